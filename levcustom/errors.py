"""Errors the CLI turns into one-line causes and exit codes (never tracebacks)."""

from __future__ import annotations

from dataclasses import dataclass


class LevcustomError(Exception):
    """Base for every expected failure: the message is shown to the user as-is."""

    exit_code = 1


@dataclass(frozen=True)
class Issue:
    """One problem in a user file, located precisely."""

    file: str
    line: int
    column: int
    key_path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}"
        return f"{where}: {self.key_path}: {self.message}" if self.key_path else f"{where}: {self.message}"


class SpecError(LevcustomError):
    """One or more invalid specs; every issue is reported at once."""

    def __init__(self, issues: list[Issue]):
        self.issues = issues
        count = len(issues)
        head = f"{count} error{'s' if count != 1 else ''} in specs"
        super().__init__(head + "\n" + "\n".join(f"  {i}" for i in issues))


class LockHeldError(LevcustomError):
    """Another process holds the state lock."""


class StalePlanError(LevcustomError):
    """A saved plan no longer matches the lockfile or the specs."""


class ProviderError(LevcustomError):
    """A provider refused or failed a request."""


class GateFailedError(LevcustomError):
    """An eval gate blocked a deployment (exit 3)."""

    exit_code = 3
