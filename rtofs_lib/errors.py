"""Exceptions raised by rtofs_lib.

Every error names the thing that is wrong (a file, a field, a name) and says
what to do about it. Catch :class:`RtofsError` to catch them all.
"""

from __future__ import annotations

from pathlib import Path


class RtofsError(Exception):
    """Base class of every error raised by rtofs_lib."""


class NotRtofsNameError(RtofsError, ValueError):
    """A file name, step or product code is not a Global RTOFS one."""


class ConfigError(RtofsError, ValueError):
    """A configuration file or ``RTOFS_*`` variable holds a bad value."""


class RtofsFileError(RtofsError, OSError):
    """A file on disk cannot be used as the RTOFS product it claims to be.

    Parameters
    ----------
    path
        The offending file.
    problem
        What is wrong, as a sentence fragment.
    hint
        What the user can do about it.
    """

    def __init__(self, path: str | Path, problem: str, hint: str = "") -> None:
        self.path = Path(path)
        self.problem = problem
        self.hint = hint
        msg = f"{self.path}: {problem}"
        if hint:
            msg += f" ({hint})"
        super().__init__(msg)

    def __reduce__(self):  # keep the exception picklable (Spark ships it to the driver)
        return (type(self), (self.path, self.problem, self.hint))


class NotNetCDFError(RtofsFileError):
    """The file is not netCDF/HDF5 at all (an HTML error page, say)."""


class TruncatedFileError(RtofsFileError):
    """The file ends before its declared data does (a cut download)."""


class MissingVariableError(RtofsFileError):
    """The requested variable is not in the file."""


class CacheFileError(RtofsFileError):
    """A cache file does not hold what its name promises: damaged, altered, built for
    another key, or of an older format (:mod:`rtofs_lib.fields.cachefile`)."""


class UnexpectedGridError(RtofsFileError):
    """The file's grid or dimensions are not those of the RTOFS product."""


class ValidTimeMismatchError(RtofsFileError, ValueError):
    """The valid time in ``MT`` disagrees with the file's name and day folder."""
