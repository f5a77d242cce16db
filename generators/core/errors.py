"""The ways a command can stop early, each with its exit code.

UsageError: bad flags or bad input; the user must change the command or the file (exit 2).
FatalError: the run cannot go on (refused key, server unreachable, budget spent) (exit 1).
Interrupted: SIGINT (exit 130) or SIGTERM (exit 143); the folder is left ready to resume.
Each carries one line meant for a person: what is wrong and what to do.
"""
from __future__ import annotations

import signal


class BaleenError(Exception):
    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UsageError(BaleenError):
    exit_code = 2


class FatalError(BaleenError):
    exit_code = 1


class Interrupted(BaleenError):
    """The run was stopped by a signal after writing its manifest."""

    def __init__(self, message: str, signum: int = signal.SIGINT) -> None:
        super().__init__(message)
        self.exit_code = 128 + int(signum)


def first_line(exc: BaseException, limit: int = 200) -> str:
    """An exception as one short line for a message (libraries' errors often carry tracebacks
    or whole responses): its type and the start of its first non-blank line."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    return f"{type(exc).__name__}: {lines[0][:limit]}" if lines else type(exc).__name__
