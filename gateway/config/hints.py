"""Hints in configuration errors: the near miss an operator probably meant (``tsl`` for
``tls``, ``es256`` for ``ES256``), so an error says what to write instead."""

from __future__ import annotations

import difflib
import os
import shlex
from collections.abc import Sequence
from pathlib import Path

__all__ = ["did_you_mean", "one_of", "shell_path"]


def did_you_mean(given: object, options: Sequence[str]) -> str:
    """`` (did you mean 'tls'?)`` for a near miss (``tsl``, ``ES256`` for ``es256``), else ''."""
    text = str(given)
    folded = [o for o in options if o.lower() == text.lower()]
    close = folded or difflib.get_close_matches(text, options, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def one_of(given: object, options: Sequence[str]) -> str:
    return "must be one of " + ", ".join(repr(o) for o in options) + did_you_mean(given, options)


def shell_path(base_dir: Path, given: str) -> str:
    """A file the configuration names (relative to its own directory), as a command run
    from the current directory must spell it: relative when it lies below, else absolute."""
    try:
        resolved = (base_dir / os.path.expanduser(given)).resolve()
        shown = str(resolved.relative_to(Path.cwd())) if resolved.is_relative_to(
            Path.cwd()) else str(resolved)
    except (OSError, ValueError):
        shown = given
    return shlex.quote(shown)
