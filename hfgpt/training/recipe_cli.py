"""What every script in ``recipes/`` does: parse its argument dataclasses with ``HfArgumentParser`` (from the command
line, or from one JSON file as transformers' examples do), call the recipe, and print bad input as one line."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence

from ..errors import HfgptInputError


def run_recipe(dataclass_types: Sequence[type], recipe: Callable, argv: Sequence[str] | None = None,
               prog: str | None = None):
    """``recipe(*parsed_dataclasses)``; an ``HfgptInputError`` prints ``<prog>: error: <message>``, exit status 2."""
    from transformers import HfArgumentParser

    parser = HfArgumentParser(tuple(dataclass_types))
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) == 1 and argv[0].endswith(".json"):
        parsed = parser.parse_json_file(argv[0])
    else:
        parsed = parser.parse_args_into_dataclasses(args=argv)
    try:
        return recipe(*parsed)
    except HfgptInputError as err:
        print(f"{os.path.basename(prog or sys.argv[0]) or 'recipe'}: error: {err}", file=sys.stderr)
        sys.exit(2)
