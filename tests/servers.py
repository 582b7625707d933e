"""Ports and processes of the servers a test run starts (the site under uvicorn, run_stack).
No Django here: the browser tests' conftest uses it before settings are configured."""

from __future__ import annotations

import os
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

from simulator.testing import stop_process

_handed_out: set[int] = set()


def free_port() -> int:
    """A loopback port nothing listens on, never the same one twice in this run. The server
    it is for binds it only after its imports, a second or two later: meanwhile the kernel
    may offer the same free port to the next caller."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port


def wait_for_http(url: str, process: subprocess.Popen, timeout: float = 30) -> None:
    """Until `url` answers, or `process` exits (an error either way)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args} exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout} s")


def wait_for_server(url: str, port: int, process: subprocess.Popen, timeout: float = 30) -> None:
    """Until `process` itself answers `url` on `port`. Something else may have bound the port
    between `free_port` and the server's start (a webhook receiver, a simulator): then its
    answer is not this server's, and the server exits for want of the port. The process is
    stopped if it does not answer."""
    try:
        wait_for_http(url, process, timeout)
        if not _listens(process.pid, port):
            raise RuntimeError(f"port {port} was taken by another process before {process.args}")
    except BaseException:
        stop(process)
        raise


def stop(process: subprocess.Popen) -> None:
    """A site gets 15 s: on SIGTERM it flushes its usage records (up to 10 s) first."""
    stop_process(process, within=15)


def _listens(pid: int, port: int) -> bool:
    """Whether process `pid` holds a socket listening on TCP `port` (Linux's /proc)."""
    sockets = {f"socket:[{inode}]" for inode in _listening_inodes(port)}
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            if os.readlink(fd) in sockets:
                return True
        except OSError:  # closed meanwhile
            continue
    return False


def _listening_inodes(port: int) -> set[str]:
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as rows:
            next(rows)  # header
            for row in rows:
                fields = row.split()
                local_address, state, inode = fields[1], fields[3], fields[9]
                if state == "0A" and int(local_address.rsplit(":", 1)[1], 16) == port:  # LISTEN
                    inodes.add(inode)
    return inodes
