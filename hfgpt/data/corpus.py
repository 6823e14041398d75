"""The default pretraining corpus: English text that ships with CPython itself.

The book pretrains on Edith Wharton's short story *The Verdict* (chapter 2 and 5), a 20 kB text file that has to be
downloaded. This package must also work offline and out of the box, so its default corpus is text every Python
installation already carries:

* ``pydoc_data.topics.topics`` -- the language reference topics behind ``help("if")`` etc. (~79 documents, ~465k
  characters of English prose);
* the plain-text ``pydoc`` rendering (``pydoc.render_doc(mod, renderer=pydoc.plaintext)``) of ~200 standard-library
  modules (~4.3M characters: docstrings, i.e. English prose mixed with signatures).

Each topic and each module is one document. Collecting the module docs means importing ~200 modules (~3-6 s), so it
runs in a separate, isolated interpreter (``python -I`` with a minimal environment, ``PYTHONHASHSEED=0``, ``TZ=UTC``):
the calling process gets none of the imports' side effects, the environment variables of the caller do not leak into
the text (``os.environ`` appears in the ``os`` module's DATA section), and the result is deterministic for a given
Python build. Memory addresses (``<object at 0x7f...>``), the ``FILE`` section and installation paths are scrubbed.
The result is cached as JSON, keyed by the Python implementation and version, in

``$HFGPT_CACHE`` or ``$HF_HOME/hfgpt`` or ``$XDG_CACHE_HOME/hfgpt`` or ``~/.cache/hfgpt`` (the first one set),

so every later call (in any process) only reads a ~5 MB JSON file (tens of milliseconds).

This module imports only the standard library at import time (``datasets`` is imported lazily by
:func:`default_corpus_dataset`), because the collector runs this very file in the child interpreter.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

__all__ = [
    "default_corpus",
    "default_corpus_dataset",
    "default_corpus_documents",
    "stdlib_module_docs",
    "corpus_cache_dir",
    "DEFAULT_CORPUS_FORMAT",
]

# Bump when the collection or scrubbing changes: old cache files are then ignored.
DEFAULT_CORPUS_FORMAT = 1

# Modules whose import has side effects (opens a browser, prints, starts a GUI), is a test suite / demo, or that are
# the source of the topics themselves. Private modules (leading underscore) are skipped too.
_SKIP_MODULES = frozenset(
    {
        "antigravity",  # opens a web browser
        "this",  # prints the Zen of Python on import
        "idlelib",  # GUI
        "tkinter",  # GUI
        "turtle",  # imports tkinter
        "turtledemo",  # GUI demos
        "test",  # CPython's test suite
        "lib2to3",  # deprecated, pulls in its own test data
        "pydoc_data",  # its topics are already the first part of the corpus
        "ensurepip",  # bundles wheels; nothing to read
        "venv",
        "__main__",
        "__phello__",
        "xxlimited",
        "xxlimited_35",
        "xxsubtype",
        "msilib",  # Windows only
        "msvcrt",
        "nt",
        "winreg",
        "winsound",
    }
)


def corpus_cache_dir() -> Path:
    """Directory of hfgpt's own cache files (not created here).

    ``$HFGPT_CACHE`` if set, else ``$HF_HOME/hfgpt``, else ``$XDG_CACHE_HOME/hfgpt``, else ``~/.cache/hfgpt``.
    """
    if os.environ.get("HFGPT_CACHE"):
        return Path(os.environ["HFGPT_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hfgpt"
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]).expanduser() / "hfgpt"
    return Path.home() / ".cache" / "hfgpt"


def _cache_file(cache_dir: str | os.PathLike | None) -> Path:
    directory = Path(cache_dir) if cache_dir is not None else corpus_cache_dir()
    version = ".".join(map(str, sys.version_info[:3]))
    implementation = platform.python_implementation().lower()
    return directory / f"default-corpus-{implementation}-{version}-v{DEFAULT_CORPUS_FORMAT}.json"


def _topic_documents() -> list[tuple[str, str]]:
    from pydoc_data.topics import topics

    return [(f"topic:{name}", topics[name]) for name in sorted(topics)]


def _default_module_names() -> list[str]:
    names = getattr(sys, "stdlib_module_names", None)
    if names is None:  # Python < 3.10: approximate with the top-level modules pkgutil sees in the stdlib folder
        import pkgutil
        import sysconfig

        stdlib = sysconfig.get_paths()["stdlib"]
        names = {m.name for m in pkgutil.iter_modules([stdlib])} | set(sys.builtin_module_names)
    return sorted(n for n in names if not n.startswith("_") and n not in _SKIP_MODULES)


# --------------------------------------------------------------------------------------------------------------------
# Collection (runs in the child interpreter; also usable in-process as a fallback).

_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+|(?<=handle )[0-9a-fA-F]{6,}")
_FILE_SECTION = re.compile(r"\nFILE\n(?:    .*\n|\n)*?(?=\S|\Z)")


def _scrub(text: str, replacements: list[tuple[str, str]]) -> str:
    text = _ADDRESS.sub("", text)
    text = _FILE_SECTION.sub("\n", text)
    for old, new in replacements:
        if old and len(old) > 1:
            text = text.replace(old, new)
    return text.rstrip() + "\n"


def _path_replacements() -> list[tuple[str, str]]:
    pairs = {}
    for value, name in (
        (sys.prefix, "<prefix>"),
        (sys.base_prefix, "<prefix>"),
        (sys.exec_prefix, "<prefix>"),
        (os.path.dirname(sys.executable), "<bin>"),
        (os.path.expanduser("~"), "~"),
        (tempfile.gettempdir(), "<tmp>"),
    ):
        if value and value not in ("/", "~") and value not in pairs:
            pairs[value] = name
    # Longest first, so /a/b/c is replaced before /a/b.
    return sorted(pairs.items(), key=lambda kv: -len(kv[0]))


def stdlib_module_docs(modules: list[str] | None = None) -> list[tuple[str, str]]:
    """Render ``pydoc`` plain-text documentation of standard-library modules IN THIS PROCESS.

    Returns ``[("module:<name>", text), ...]`` in the order given (default: all public stdlib modules, sorted,
    minus side-effect and test modules). Modules that fail to import or render are skipped; warnings and anything the
    imports print are swallowed. Prefer :func:`default_corpus`, which runs this in an isolated child interpreter and
    caches the result.
    """
    import pydoc

    names = _default_module_names() if modules is None else list(modules)
    replacements = _path_replacements()
    out: list[tuple[str, str]] = []
    for name in names:
        sink = io.StringIO()
        try:
            with warnings.catch_warnings(), contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
                warnings.simplefilter("ignore")
                __import__(name)
                text = pydoc.render_doc(sys.modules[name], renderer=pydoc.plaintext)
        except BaseException:  # noqa: BLE001 - SystemExit/KeyboardInterrupt-raising imports are skipped too
            continue
        out.append((f"module:{name}", _scrub(text, replacements)))
    return out


def _child_main() -> None:
    """Entry point of the child interpreter: read a JSON request on stdin, write the documents to the given file."""
    request = json.loads(sys.stdin.read())
    docs = stdlib_module_docs(request.get("modules"))
    with open(request["output"], "w", encoding="utf-8") as fh:
        json.dump(docs, fh, ensure_ascii=False)


def _collect_in_child(modules: list[str] | None = None, timeout: float = 300.0) -> list[tuple[str, str]]:
    env = {
        "PYTHONHASHSEED": "0",
        "PYTHONIOENCODING": "utf-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        "LC_ALL": "C.UTF-8",
        "LANG": "C.UTF-8",
        "TZ": "UTC",
        "HOME": os.path.expanduser("~"),
        "PATH": os.defpath,
    }
    # argv stays ['-c'] so that the sys module's DATA section does not carry a temporary path.
    bootstrap = (
        "import sys\n"
        "path = sys.stdin.readline().rstrip('\\n')\n"
        "namespace = {'__name__': '_hfgpt_corpus_child', '__file__': path}\n"
        "exec(compile(open(path, encoding='utf-8').read(), path, 'exec'), namespace)\n"
        "namespace['_child_main']()\n"
    )
    with tempfile.TemporaryDirectory(prefix="hfgpt-corpus-") as tmp:
        output = os.path.join(tmp, "docs.json")
        request = os.path.abspath(__file__) + "\n" + json.dumps({"modules": modules, "output": output})
        proc = subprocess.run(
            [sys.executable, "-I", "-c", bootstrap],
            input=request,
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
            cwd=tmp,
        )
        if proc.returncode != 0 or not os.path.exists(output):
            raise RuntimeError(
                f"collecting the standard-library docs failed (exit {proc.returncode}):\n{proc.stderr[-2000:]}"
            )
        with open(output, encoding="utf-8") as fh:
            return [tuple(pair) for pair in json.load(fh)]


# --------------------------------------------------------------------------------------------------------------------
# Public API

_MEMO: dict[str, list[tuple[str, str]]] = {}


def default_corpus_documents(
    cache_dir: str | os.PathLike | None = None, refresh: bool = False
) -> list[tuple[str, str]]:
    """All documents of the default corpus as ``(source, text)`` pairs, topics first, then modules (both sorted).

    ``source`` is ``"topic:<name>"`` or ``"module:<name>"``. The first call collects the module docs in a child
    interpreter and writes the cache file; later calls read it. ``refresh=True`` rebuilds the cache.
    """
    path = _cache_file(cache_dir)
    key = str(path)
    if not refresh and key in _MEMO:
        return list(_MEMO[key])
    docs: list[tuple[str, str]] | None = None
    if not refresh and path.is_file():
        try:
            with open(path, encoding="utf-8") as fh:
                payload = json.load(fh)
            if payload.get("format") == DEFAULT_CORPUS_FORMAT and payload.get("python") == sys.version:
                docs = [tuple(pair) for pair in payload["documents"]]
        except (OSError, ValueError, KeyError, TypeError):
            docs = None  # unreadable or stale cache: rebuild it
    if docs is None:
        try:
            modules = _collect_in_child()
        except (OSError, RuntimeError, subprocess.SubprocessError) as err:
            warnings.warn(f"isolated collection failed ({err}); collecting in this process instead", RuntimeWarning)
            modules = stdlib_module_docs()
        docs = _topic_documents() + modules
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                payload = {"format": DEFAULT_CORPUS_FORMAT, "python": sys.version, "documents": docs}
                json.dump(payload, fh, ensure_ascii=False)
            os.replace(tmp, path)  # atomic: concurrent readers see the old file or the complete new one
        except OSError as err:
            warnings.warn(f"could not write the corpus cache {path}: {err}", RuntimeWarning)
    _MEMO[key] = docs
    return list(docs)


def default_corpus(max_chars: int | None = None, cache_dir: str | os.PathLike | None = None) -> list[str]:
    """The embedded default corpus as a list of documents (one per pydoc topic, then one per stdlib module).

    ``max_chars`` caps the total number of characters: documents are taken in order and the last one is cut. When
    the cap fits inside the pydoc topics (~465k characters), no module is imported and no cache is touched, so small
    corpora (tests, smoke runs) cost nothing. The full corpus is ~4.7M characters (~285 documents).
    """
    if max_chars is not None:
        if max_chars <= 0:
            raise ValueError(f"max_chars must be positive, got {max_chars}")
        topics = _topic_documents()
        if sum(len(text) for _, text in topics) >= max_chars:
            return _truncate([text for _, text in topics], max_chars)
    texts = [text for _, text in default_corpus_documents(cache_dir)]
    return texts if max_chars is None else _truncate(texts, max_chars)


def _truncate(texts: list[str], max_chars: int) -> list[str]:
    out, used = [], 0
    for text in texts:
        if used >= max_chars:
            break
        piece = text[: max_chars - used]
        out.append(piece)
        used += len(piece)
    return out


def default_corpus_dataset(max_chars: int | None = None, cache_dir: str | os.PathLike | None = None):
    """The default corpus as an in-memory ``datasets.Dataset`` with a ``"text"`` column (one row per document)."""
    import datasets

    return datasets.Dataset.from_dict({"text": default_corpus(max_chars, cache_dir=cache_dir)})
