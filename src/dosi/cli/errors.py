"""The one error type the CLI turns into a single stderr line and exit code 2."""

from __future__ import annotations


class CliError(Exception):
    """A problem the operator can fix (busy port, unusable data dir); never a traceback."""
