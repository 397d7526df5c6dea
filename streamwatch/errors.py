"""Errors that the CLI reports as a one-line message and a non-zero exit code."""

from __future__ import annotations


class StreamwatchError(Exception):
    """A failure the user can act on; printed without a traceback."""

    exit_code = 1


class ConfigurationError(StreamwatchError):
    """A missing tool (Java, Maven) or an unusable setting."""

    exit_code = 2


class PortInUseError(StreamwatchError):
    """A port streamwatch needs is taken by another process."""

    exit_code = 3


class StartupTimeoutError(StreamwatchError):
    """A server did not become healthy in time."""

    exit_code = 4
