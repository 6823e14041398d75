"""The one error hfgpt raises for bad input.

The recipes and the ``hfgpt`` command line print :class:`HfgptInputError` as one line and exit with status 2; every
other exception keeps its traceback, because it is a bug, not a user mistake.
"""


class HfgptInputError(ValueError):
    """Bad input from the user (a flag, a file, a value); a ``ValueError``, so ``except ValueError`` still works."""


class HfgptFileNotFoundError(HfgptInputError, FileNotFoundError):
    """A file or folder the user named is not there: bad input that ``except FileNotFoundError`` also catches."""


class HfgptDownloadError(HfgptInputError, ConnectionError):
    """A file could not be fetched (offline, or no network): the message names the flag that takes a local copy."""


__all__ = ["HfgptDownloadError", "HfgptFileNotFoundError", "HfgptInputError"]
