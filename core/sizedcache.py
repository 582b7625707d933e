"""A least-recently-used cache bounded by the size of its keys, not their count: for what is
compiled from text a client or a tenant chose (prompt templates, JSON schemas).

Django-free: the prompt render workers import it alone.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any


class SizedCache:
    """Least-recently-used cache of values built from text keys, whose size is the total
    length of its keys (what a compiled template or schema grows with), so that a few huge
    keys cannot hold more memory than many small ones. A key longer than a quarter of the
    cache is built each time, never kept."""

    def __init__(self, max_chars: int, build: Callable[[str], Any]) -> None:
        self.max_chars = max_chars
        self.build = build
        self.chars = 0
        self.entries: OrderedDict[str, Any] = OrderedDict()
        self.lock = threading.Lock()  # sync views' threads and the event loop share it

    def get(self, source: str) -> Any:
        with self.lock:
            value = self.entries.get(source)
            if value is not None:
                self.entries.move_to_end(source)
                return value
        value = self.build(source)
        if len(source) > self.max_chars // 4:  # a template larger than that is not kept
            return value
        with self.lock:
            if source not in self.entries:
                self.entries[source] = value
                self.chars += len(source)
            while self.chars > self.max_chars:
                old, _ = self.entries.popitem(last=False)
                self.chars -= len(old)
        return value

    def clear(self) -> None:
        with self.lock:
            self.entries.clear()
            self.chars = 0
