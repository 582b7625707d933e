"""Database helpers shared by the apps."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from django.db import InterfaceError, OperationalError, connection

P = ParamSpec("P")
T = TypeVar("T")


def reconnecting(read: Callable[P, T]) -> Callable[P, T]:
    """Run a read once more on a fresh connection when the thread's connection was dropped
    while idle (a database restart, a proxy's idle timeout).

    For the gateway lane: its shared sync thread keeps its connection between requests, and
    Django's request signals, which would check it, are not sent there. Inside a transaction
    the error is raised as is: the transaction is lost anyway."""

    @functools.wraps(read)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return read(*args, **kwargs)
        except (InterfaceError, OperationalError):
            if connection.in_atomic_block:
                raise
            connection.close()
            return read(*args, **kwargs)

    return wrapper
