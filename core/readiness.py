"""Readiness checks of a process's own state, registered by the apps above core (in their
AppConfig.ready) and reported by /readyz (core.views)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

# name → a function run on the server's event loop that returns what to report, and raises
# ProcessNotReady (with its report) when this process should take no traffic.
PROCESS_CHECKS: dict[str, Callable[[], dict[str, Any]]] = {}


class ProcessNotReady(Exception):
    def __init__(self, message: str, report: dict[str, Any]) -> None:
        super().__init__(message)
        self.report = report
