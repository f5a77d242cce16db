"""The two ways a command can stop early, each with its exit code (DESIGN.md section 4).

UsageError: bad flags or bad input; the user must change the command or the file (exit 2).
FatalError: the run cannot go on (refused key, server unreachable, budget spent) (exit 1).
Both carry one line meant for a person: what is wrong and what to do.
"""
from __future__ import annotations


class BaleenError(Exception):
    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UsageError(BaleenError):
    exit_code = 2


class FatalError(BaleenError):
    exit_code = 1
