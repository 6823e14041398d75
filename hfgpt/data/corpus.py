"""The default pretraining corpus: English text that ships with CPython, so the recipes run offline (the book
downloads a short story). The ``pydoc`` topics and standard-library pages, rendered in an isolated child interpreter
(``python -I``: the same text every time), scrubbed of addresses and paths, cached as JSON in ``$HFGPT_CACHE``
(default ``$HF_HOME/hfgpt``, else ``~/.cache/hfgpt``). This file imports only the standard library: the child runs it.
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

CORPUS_FORMAT = 2  # part of the cache file's name: bump it when the collection or the scrubbing changes

# Imports with side effects (a browser, a print, a GUI), test suites, Windows-only modules, the topics' own module.
_SKIP_MODULES = frozenset(
    "antigravity this idlelib tkinter turtle turtledemo test lib2to3 pydoc_data ensurepip venv xxlimited "
    "xxlimited_35 xxsubtype msilib msvcrt nt winreg winsound".split()
)
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+|(?<=handle )[0-9a-fA-F]{6,}")
_FILE_SECTION = re.compile(r"\nFILE\n(?:    .*\n|\n)*?(?=\S|\Z)")
_MEMO: dict[str, list[tuple[str, str]]] = {}


def corpus_cache_dir() -> Path:
    if os.environ.get("HFGPT_CACHE"):
        return Path(os.environ["HFGPT_CACHE"]).expanduser()
    return Path(os.environ.get("HF_HOME") or os.environ.get("XDG_CACHE_HOME") or "~/.cache").expanduser() / "hfgpt"


def _topics() -> list[tuple[str, str]]:
    from pydoc_data.topics import topics

    return [(f"topic:{name}", topics[name]) for name in sorted(topics)]


def _render_modules(names: list[str] | None) -> list[tuple[str, str]]:
    """``pydoc`` pages of ``names`` (default: the public stdlib modules) in this process; failing imports skipped."""
    import pydoc

    if names is None:
        names = sorted(n for n in sys.stdlib_module_names if not n.startswith("_") and n not in _SKIP_MODULES)
    paths = {sys.prefix: "<prefix>", sys.base_prefix: "<prefix>", sys.exec_prefix: "<prefix>",
             os.path.dirname(sys.executable): "<bin>", os.path.expanduser("~"): "~", tempfile.gettempdir(): "<tmp>"}
    paths = sorted((item for item in paths.items() if len(item[0]) > 1), key=lambda item: -len(item[0]))
    pages = []
    for name in names:
        sink = io.StringIO()
        try:
            with warnings.catch_warnings(), contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
                warnings.simplefilter("ignore")
                __import__(name)
                text = pydoc.render_doc(sys.modules[name], renderer=pydoc.plaintext)
        except BaseException:  # noqa: BLE001 - an import that fails or calls sys.exit is skipped
            continue
        text = _FILE_SECTION.sub("\n", _ADDRESS.sub("", text))
        for path, placeholder in paths:  # longest first: /a/b/c before /a/b
            text = text.replace(path, placeholder)
        pages.append((f"module:{name}", text.rstrip() + "\n"))
    return pages


def _collect_in_child(modules: list[str] | None = None) -> list[tuple[str, str]]:
    env = {"PYTHONHASHSEED": "0", "PYTHONIOENCODING": "utf-8", "PYTHONDONTWRITEBYTECODE": "1", "LC_ALL": "C.UTF-8",
           "LANG": "C.UTF-8", "TZ": "UTC", "HOME": os.path.expanduser("~"), "PATH": os.defpath}
    with tempfile.TemporaryDirectory(prefix="hfgpt-corpus-") as tmp:
        output = os.path.join(tmp, "pages.json")
        # Constant code, the paths on stdin: sys.orig_argv, shown on the sys module's page, carries none of them.
        code = ("import json, sys\nsource, modules, output = json.load(sys.stdin)\n"
                "exec(open(source, encoding='utf-8').read())\n"
                "json.dump(_render_modules(modules), open(output, 'w', encoding='utf-8'), ensure_ascii=False)")
        done = subprocess.run([sys.executable, "-I", "-c", code], input=json.dumps([__file__, modules, output]),
                              capture_output=True, text=True, env=env, cwd=tmp, timeout=600)
        if done.returncode != 0:
            raise RuntimeError(f"collecting the standard-library pages failed:\n{done.stderr[-2000:]}")
        with open(output, encoding="utf-8") as fh:
            return [tuple(page) for page in json.load(fh)]


def _documents() -> list[tuple[str, str]]:
    """The topics and the module pages as ``(source, text)`` pairs, the pages read from the cache when it exists."""
    version = f"{platform.python_implementation().lower()}-{'.'.join(map(str, sys.version_info[:3]))}"
    path = corpus_cache_dir() / f"default-corpus-{version}-v{CORPUS_FORMAT}.json"
    if str(path) not in _MEMO:
        try:
            pages = [tuple(page) for page in json.loads(path.read_text(encoding="utf-8"))]
        except (OSError, ValueError):  # no cache yet, or an unreadable one
            pages = _collect_in_child()
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                partial = path.with_name(f"{path.name}.{os.getpid()}.tmp")
                partial.write_text(json.dumps(pages, ensure_ascii=False), encoding="utf-8")
                os.replace(partial, path)  # other processes read the old file or the whole new one
            except OSError as err:
                warnings.warn(f"could not write the corpus cache {path}: {err}", RuntimeWarning)
        _MEMO[str(path)] = _topics() + pages
    return _MEMO[str(path)]


def default_corpus(max_chars: int | None = None) -> list[str]:
    """The default corpus as a list of documents; ``max_chars`` keeps that many characters (the last document cut)."""
    from ..errors import HfgptInputError  # here, not at the top: the child interpreter runs this file alone

    if max_chars is not None and max_chars <= 0:
        raise HfgptInputError(f"max_chars (--max_corpus_chars) must be a positive number, got {max_chars!r}")
    texts = [text for _, text in _topics()]
    if max_chars is None or sum(map(len, texts)) < max_chars:
        texts = [text for _, text in _documents()]
    if max_chars is None:
        return texts
    kept = []
    for text in texts:
        if max_chars <= 0:
            break
        kept.append(text[:max_chars])
        max_chars -= len(kept[-1])
    return kept
