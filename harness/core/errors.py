"""The one exception family the CLIs turn into a one-line error and exit code 2."""

from __future__ import annotations


class MaltError(Exception):
    """A user-facing error: bad input, missing file, unknown name. Printed as one line."""


class DataError(MaltError):
    """A dataset file or row that cannot be used."""


class ModelError(MaltError):
    """A model or adapter that cannot be found or loaded."""


class UnknownTaskError(MaltError, ValueError):
    """A task name that is not one of the malt_* tasks."""


class _InterruptRecord:
    """The SIGINT/SIGTERM handler of :func:`interrupt_on_sigterm`: raises ``KeyboardInterrupt`` and keeps each
    signal on record. The record lives in the installed handler, so :func:`raise_if_interrupted` finds it
    through ``signal.getsignal`` (no module-level list)."""

    def __init__(self) -> None:
        self.signals: list[int] = []

    def __call__(self, signum, frame) -> None:
        self.signals.append(signum)
        raise KeyboardInterrupt


def interrupt_on_sigterm() -> None:
    """Treat SIGTERM like Ctrl-C, so CLIs release locks and say how to resume.

    Both signals are also kept on record (a fresh record per call): Python drops an exception raised while a
    finaliser (``__del__``, a garbage-collector callback) runs, so a signal landing there would be lost; long
    loops call :func:`raise_if_interrupted` after each write and stop there instead.
    """
    import signal

    handler = _InterruptRecord()
    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def raise_if_interrupted() -> None:
    """Raise ``KeyboardInterrupt`` if a signal arrived whose exception was swallowed (see above)."""
    import signal

    handlers = (signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM))
    if any(isinstance(h, _InterruptRecord) and h.signals for h in handlers):
        raise KeyboardInterrupt


class OneLineUsageErrors:
    """Mixin for click commands and groups: the one place where bad input becomes one line and an exit code.

    Usage errors (bad option value, missing argument) and a :class:`MaltError` or ``OSError`` raised by the
    command are one ``<prog>: error: ...`` line and exit code 2; an interrupt (Ctrl-C, SIGTERM) is
    ``<prog>: interrupted`` plus :meth:`resume_hint` and exit code 130. Set ``prog`` on the class.
    """

    prog: str = ""
    handles_signals: bool = False  # SIGTERM as Ctrl-C (long-running commands)

    def resume_hint(self, params: dict) -> str:
        """What follows ``<prog>: interrupted`` (e.g. how to resume), from the command's parameters."""
        return ""

    def speaks(self) -> bool:
        """Whether this process prints errors (under a multi-process launch only one does)."""
        return True

    def invoke(self, ctx):  # noqa: D102 - click's call of the command
        import sys

        if self.handles_signals:
            interrupt_on_sigterm()
        try:
            return super().invoke(ctx)
        except MaltError as exc:
            self._say(f"{self.prog}: error: {exc}")
            sys.exit(2)
        except OSError as exc:
            where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
            self._say(f"{self.prog}: error: {where}{exc.strerror or exc}")
            sys.exit(2)
        except KeyboardInterrupt:
            self._say(f"{self.prog}: interrupted{self.resume_hint(dict(ctx.params))}")
            sys.exit(130)

    def _say(self, line: str) -> None:
        import click

        if self.speaks():
            click.echo(line, err=True)

    def main(self, args=None, prog_name=None, **extra):  # noqa: D102 - click's entry point
        import sys

        import click

        extra.pop("standalone_mode", None)
        try:
            rv = super().main(args, prog_name, standalone_mode=False, **extra)
        except click.exceptions.NoArgsIsHelpError as exc:  # a bare group: its help
            click.echo(exc.format_message(), err=True)
            sys.exit(2)
        except click.UsageError as exc:
            name = getattr(self, "prog", None) or prog_name or "malt"
            click.echo(f"{name}: error: {exc.format_message()}", err=True)
            sys.exit(2)
        except click.ClickException as exc:
            exc.show()
            sys.exit(exc.exit_code)
        except click.exceptions.Abort:
            click.echo("interrupted", err=True)
            sys.exit(130)
        sys.exit(rv if isinstance(rv, int) else 0)
