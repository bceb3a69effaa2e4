"""What can go wrong with face data on disk, as two exception types the CLI reports cleanly.

Both subclass a built-in exception, so code that catches ``FileNotFoundError`` or ``ValueError``
keeps working, and both carry a message that names the file and says what to do.
"""
from __future__ import annotations

__all__ = ["CorruptFileError", "DataNotFoundError"]


class DataNotFoundError(FileNotFoundError):
    """A data set is not where it was looked for; the message lists every place tried."""


class CorruptFileError(ValueError):
    """A file exists but cannot be read as the format it claims to be.

    The message names the file and, for containers, the record (index or byte offset), so a
    broken record in a multi-gigabyte ``.rec`` can be found.
    """
