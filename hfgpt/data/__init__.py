"""Data: raw text split into train / validation (:mod:`.text`, the default corpus in :mod:`.corpus`), pretraining
windows (:mod:`.windows`), and the fine-tuning sets (:mod:`.spam`, :mod:`.instructions`, :mod:`.preferences`)."""

from .corpus import default_corpus
from .text import load_text_datasets
from .windows import (build_pretraining_datasets, check_window_args, group_into_windows, token_stream,
                      tokenize_and_window)

__all__ = ["build_pretraining_datasets", "check_window_args", "default_corpus", "group_into_windows",
           "load_text_datasets", "token_stream", "tokenize_and_window"]
