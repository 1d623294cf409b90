"""The one error type users can cause, and helpers that raise it with a useful message."""

from __future__ import annotations


class StgeoError(ValueError):
    """Bad input that the user can fix: a file, column, CRS, key or value that is wrong.

    The message always names what is wrong (the file, the column, the key) and what to do.
    The CLI turns it into a one-paragraph message and exit code 2, never a traceback.
    """


class Cancelled(StgeoError):
    """A long operation (e.g. tiled prediction) was cancelled by its ``cancel`` callback.

    Raised after temporary files are removed; nothing is left under the output path.
    """


def did_you_mean(name: str, valid: list[str] | tuple[str, ...] | set[str]) -> str:
    """Return a short hint listing the valid names, closest first."""
    import difflib

    valid = sorted(valid)
    close = difflib.get_close_matches(name, valid, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return f"Valid names: {', '.join(valid)}.{hint}"
