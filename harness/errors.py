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
