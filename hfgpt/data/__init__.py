"""Data for pretraining: the embedded default corpus and the book's chapter-2 sliding-window sampling as a
``datasets`` pipeline (see :mod:`hfgpt.data.sampling`)."""

from .corpus import corpus_cache_dir, default_corpus, default_corpus_dataset, default_corpus_documents
from .sampling import (
    SUPPORTED_EXTENSIONS,
    WindowStats,
    build_pretraining_datasets,
    group_into_windows,
    load_text_datasets,
    num_windows,
    token_stream,
    tokenize_and_window,
    window_starts,
)

__all__ = [
    "SUPPORTED_EXTENSIONS",
    "WindowStats",
    "build_pretraining_datasets",
    "corpus_cache_dir",
    "default_corpus",
    "default_corpus_dataset",
    "default_corpus_documents",
    "group_into_windows",
    "load_text_datasets",
    "num_windows",
    "token_stream",
    "tokenize_and_window",
    "window_starts",
]
