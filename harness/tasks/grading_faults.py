"""What grading could not do: answers whose grader raised or ran out of time, and the strict mode that raises.

The grading functions (:mod:`harness.tasks.grading`) never let a grader's exception out: the answer grades ``None`` /
``False`` as before, and a :class:`GraderFaults` passed in records it, so a results file can say how many answers
were never really graded (``grader_errors``, ``grader_timeouts``). With ``MALT_GRADER_STRICT=1`` in the
environment (read at each call; the test suite sets it) a grader's exception is raised instead. A comparison that
runs out of time (:func:`time_budget`) is recorded as a timeout in either mode, never raised.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TypeVar

STRICT_ENV = "MALT_GRADER_STRICT"
_T = TypeVar("_T")


class GraderTimeout(Exception):
    """A grader's comparison ran past its time budget."""


class _OutOfTime(BaseException):  # a BaseException, so math-verify's own ``except Exception`` can't swallow it
    pass


def strict() -> bool:
    """Whether graders run strict: ``$MALT_GRADER_STRICT`` set to anything but empty or ``0``."""
    return os.environ.get(STRICT_ENV, "").strip() not in ("", "0")


@dataclass
class GraderFaults:
    """The inputs (texts or answers) whose grading raised (``errors``) or ran out of time (``timeouts``)."""

    errors: set[str] = field(default_factory=set)
    timeouts: set[str] = field(default_factory=set)

    def counts(self) -> dict[str, int]:
        """``{"grader_errors": n, "grader_timeouts": n}``: how many distinct inputs failed each way."""
        return {"grader_errors": len(self.errors), "grader_timeouts": len(self.timeouts)}

    def kind(self) -> str | None:
        """``"timeout"``, ``"error"`` or ``None`` (nothing failed)."""
        return "timeout" if self.timeouts else "error" if self.errors else None


def guarded(call: Callable[[], _T], default: _T, key: str, faults: GraderFaults | None) -> _T:
    """``call()``; on a grader's exception ``default``, recorded in ``faults`` under ``key`` (raised when strict)."""
    try:
        return call()
    except GraderTimeout:
        if faults is not None:
            faults.timeouts.add(key)
        return default
    except Exception:
        if strict():
            raise
        if faults is not None:
            faults.errors.add(key)
        return default


def _raise_out_of_time(signum, frame) -> None:
    raise _OutOfTime


@contextmanager
def time_budget(seconds: float) -> Iterator[None]:
    """Raise :class:`GraderTimeout` when the body runs past ``seconds``. A SIGALRM timer: it applies in the main
    thread only; elsewhere the body runs without a limit."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.signal(signal.SIGALRM, _raise_out_of_time)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    except _OutOfTime:
        raise GraderTimeout(f"over {seconds} s") from None
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
