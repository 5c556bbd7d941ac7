"""Argument types the `dosi` commands share: each turns bad input into argparse's one-line error.

`speed` asks the twin's parser lazily, so `dosi --version` and usage errors stay instant.
"""

from __future__ import annotations

import argparse

LOG_LEVELS = ("critical", "error", "warning", "info", "debug")


def port(text: str) -> int:
    try:
        number = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= number <= 65535:
        raise argparse.ArgumentTypeError(f"port must be 0-65535 (0 picks a free one): {number}")
    return number


def hours(text: str) -> float:
    """Simulated hours: more than 0, at most a week."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of hours: {text!r}") from None
    if not 0 < value <= 168:
        raise argparse.ArgumentTypeError(f"hours must be more than 0 and at most 168, got {text}")
    return value


def seconds(text: str) -> float:
    """A duration of 0 s to an hour (signal timings)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 <= value <= 3600:
        raise argparse.ArgumentTypeError(f"seconds must be 0..3600, got {text}")
    return value


def seed(text: str) -> int:
    if not text.isdigit() or int(text) >= 2**31:
        raise argparse.ArgumentTypeError(f"a seed is a whole number 0..2147483647, got {text!r}")
    return int(text)


def speed(text: str) -> str:
    """A twin speed as the scenario files write it: 'max', 'realtime' or '<N>x'."""
    from dosi.twin.scenario import parse_speed

    try:
        parse_speed(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text
