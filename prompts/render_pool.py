"""Killable worker processes that render the templates which may loop, recurse or build huge
values, so that such a template never holds the server's event loop, its memory or its GIL.

The parent side (`RenderPool`) keeps a few workers per server process, started on first use.
A request is pickled over the worker's stdin with a length prefix; the answer comes back as
JSON (text only: the worker runs tenants' templates, so the parent never unpickles from it).
A worker past its deadline is killed and replaced; the caller gets a `template_timeout`.

The child side (`python -m prompts.render_pool`) imports no Django: only prompts.sandbox. It
caps its own address space, so a memory bomb is a MemoryError in the worker, and checks the
same deadline with an alarm, so that most slow templates end with a clean answer before the
parent has to kill anything. It runs at a lower CPU priority (`NICENESS`): a template that
spins for its whole deadline takes only the CPU that the server processes leave, so the other
teams' requests keep their latency even when every core is busy.
"""

from __future__ import annotations

import json
import os
import pickle
import resource
import select
import signal
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, BinaryIO

from core.sizedcache import SizedCache
from prompts.sandbox import (
    TIMEOUT,
    TOO_LARGE,
    Failure,
    Limits,
    RenderLimit,
    compile_template,
    failure_of,
    render_bounded,
)

ROOT = Path(__file__).resolve().parent.parent
_HEADER = struct.Struct("!I")
# A worker past its deadline gets this long to answer before it is killed.
KILL_GRACE_SECONDS = 0.4
START_SECONDS = 20
# Added to the server's niceness: under contention a worker gets about a tenth of the CPU
# that a server process gets (the kernel's weights for nice 0 and 10: 1024 and 110).
NICENESS = 10


class RenderBusy(Exception):
    """Every worker stayed busy for the whole deadline."""


def _read_exactly(stream: BinaryIO, size: int) -> bytes:
    data = stream.read(size)
    if data is None or len(data) != size:
        raise EOFError
    return data


# --------------------------------------------------------------------------------- parent


class _Worker:
    def __init__(self, memory_mb: int) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "prompts.render_pool", str(memory_mb)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        # Started when its first byte arrives: a slow start does not eat a render's deadline.
        stdout = self.process.stdout
        assert stdout is not None
        ready, _, _ = select.select([stdout], [], [], START_SECONDS)
        if not ready or stdout.read(1) != b"+":
            self.kill()
            raise RenderBusy

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                stream.close()

    def ask(self, payload: bytes, deadline: float) -> dict[str, Any] | None:
        """The worker's answer, or None when it missed `deadline` (monotonic)."""
        stdin, stdout = self.process.stdin, self.process.stdout
        assert stdin is not None
        assert stdout is not None
        stdin.write(_HEADER.pack(len(payload)) + payload)
        stdin.flush()
        remaining = deadline - time.monotonic()
        ready, _, _ = select.select([stdout], [], [], max(remaining, 0))
        if not ready:
            return None
        (size,) = _HEADER.unpack(_read_exactly(stdout, _HEADER.size))
        return json.loads(_read_exactly(stdout, size))


class RenderPool:
    """Up to `size` workers; each render takes one for its duration."""

    def __init__(self, *, size: int, memory_mb: int) -> None:
        self.size = size
        self.memory_mb = memory_mb
        self.idle: list[_Worker] = []
        self.free = threading.Semaphore(size)
        self.lock = threading.Lock()

    def _take(self) -> _Worker:
        with self.lock:
            while self.idle:
                worker = self.idle.pop()
                if worker.alive:
                    return worker
                worker.kill()
        return _Worker(self.memory_mb)

    def _replace(self, worker: _Worker) -> None:
        """Kill `worker` and start its successor in the background, so that the next render
        does not wait for a process to start."""
        worker.kill()

        def start() -> None:
            try:
                successor = _Worker(self.memory_mb)
            except RenderBusy:
                return
            with self.lock:
                if len(self.idle) < self.size:
                    self.idle.append(successor)
                    return
            successor.kill()

        threading.Thread(target=start, daemon=True).start()

    def render(
        self, sources: Sequence[tuple[str, str]], values: dict[str, Any], limits: Limits
    ) -> list[str] | tuple[str, Failure]:
        """Each source rendered, or (where, failure) for the first that failed.

        Raises RenderBusy when no worker was free within the limits' time.
        """
        if not self.free.acquire(timeout=limits.seconds):
            raise RenderBusy
        try:
            worker = self._take()
            payload = pickle.dumps((list(sources), values, asdict(limits)))
            try:
                answer = worker.ask(payload, time.monotonic() + limits.seconds + KILL_GRACE_SECONDS)
            except (OSError, EOFError, ValueError):
                answer = {"failed": ["", _stopped()]}
                self._replace(worker)
            else:
                if answer is None:
                    self._replace(worker)
                    timeout = RenderLimit(
                        TIMEOUT, f"took longer than {limits.seconds:g} s to render."
                    )
                    answer = {"failed": ["", failure_of(timeout)]}
                elif answer.pop("retire", False):
                    self._replace(worker)
                else:
                    with self.lock:
                        self.idle.append(worker)
        finally:
            self.free.release()
        if "failed" in answer:
            where, failure = answer["failed"]
            return where, failure
        return answer["texts"]

    def close(self) -> None:
        with self.lock:
            for worker in self.idle:
                worker.kill()
            self.idle.clear()


def _stopped() -> Failure:
    return {
        "kind": "limit",
        "code": TOO_LARGE,
        "message": "used more resources than a prompt may.",
    }


# ---------------------------------------------------------------------------------- child


def _on_alarm(signum: int, frame: Any) -> None:
    raise RenderLimit(TIMEOUT, "took too long to render.")


def _answer(request: tuple[list[tuple[str, str]], dict[str, Any], dict[str, Any]], cache: Any):
    sources, values, limit_fields = request
    limits = Limits(**limit_fields)
    texts = []
    # The loop/call checks see the same deadline; the alarm catches time spent elsewhere.
    signal.setitimer(signal.ITIMER_REAL, limits.seconds + 0.05)
    try:
        for where, source in sources:
            try:
                texts.append(render_bounded(cache.get(source), values, limits))
            except Exception as exc:
                failure = failure_of(exc) or {"kind": "failed", "message": str(exc)}
                spent = isinstance(exc, MemoryError) or getattr(exc, "exhausted", False)
                return {"failed": [where, failure]}, spent
        return {"texts": texts}, False
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


def main(memory_mb: int) -> None:
    os.nice(NICENESS)
    with open("/proc/self/statm") as statm:
        size_now = int(statm.read().split()[0]) * resource.getpagesize()
    limit = size_now + memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    signal.signal(signal.SIGALRM, _on_alarm)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when a worker ends
    cache = SizedCache(4 * 1024 * 1024, lambda source: compile_template(source, guarded=True))
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    stdout.write(b"+")
    stdout.flush()
    while True:
        try:
            (size,) = _HEADER.unpack(_read_exactly(stdin, _HEADER.size))
            # From the parent, which pickled its own values: trusted.
            request = pickle.loads(_read_exactly(stdin, size))  # noqa: S301
        except EOFError:
            return
        try:
            answer, spent = _answer(request, cache)
        except RenderLimit as exc:  # the alarm, between two templates
            answer, spent = {"failed": ["", failure_of(exc)]}, False
        body = json.dumps({**answer, "retire": spent}).encode()
        stdout.write(_HEADER.pack(len(body)) + body)
        stdout.flush()
        if spent:
            # After a limit the heap may be huge or fragmented: start afresh.
            return


if __name__ == "__main__":
    main(int(sys.argv[1]))
