"""How a command or a job ended: one exit status for every ``rtofs`` command and report.

>>> RunStatus.of(done=5, failed=0)
<RunStatus.COMPLETE: 'complete'>
>>> RunStatus.of(done=3, failed=2).exit_status
<ExitStatus.PARTIAL: 3>
>>> int(ExitStatus.USAGE), RunStatus.FAILED == "failed"
(2, True)
"""

from __future__ import annotations

import enum

__all__ = ["ExitStatus", "RunStatus"]


class ExitStatus(enum.IntEnum):
    """Exit status of ``rtofs`` commands (and of the reports behind them)."""

    #: Everything asked for is done.
    OK = 0
    #: Nothing could be done (or an unexpected error).
    FAILED = 1
    #: A usage or configuration error: fix the command line or the settings.
    USAGE = 2
    #: Some files failed or are not published yet; the rest is done (a rerun finishes it).
    PARTIAL = 3


class RunStatus(enum.StrEnum):
    """The outcome of a run over many files (a crawl, a rendering run)."""

    COMPLETE = "complete"
    PARTIAL = "partial"
    FAILED = "failed"

    @classmethod
    def of(cls, *, done: int, failed: int) -> RunStatus:
        """The status of a run with ``done`` files finished and ``failed`` files not.

        A run with nothing to do (``done == failed == 0``) is complete.
        """
        if not failed:
            return cls.COMPLETE
        return cls.PARTIAL if done else cls.FAILED

    @property
    def exit_status(self) -> ExitStatus:
        """The command's exit status for this outcome."""
        return _EXIT[self]


_EXIT = {
    RunStatus.COMPLETE: ExitStatus.OK,
    RunStatus.PARTIAL: ExitStatus.PARTIAL,
    RunStatus.FAILED: ExitStatus.FAILED,
}
