"""Start the simulator as a real HTTP server for tests and benchmarks.

    with SimulatorServer(latency_scale=0) as simulator:
        client = openai.OpenAI(base_url=simulator.url, api_key="test")

    with SimulatorServer(answer_seconds=1.0) as upstream:  # every answer takes 1 s
        ...

The server is a subprocess (`python -m simulator`) on 127.0.0.1. This process binds and
listens on a free port first and hands the socket over, so the port cannot be taken by
someone else in between and connections made during startup wait in the backlog.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from types import TracebackType

_ROOT = Path(__file__).resolve().parent.parent
_BACKLOG = 4096


def stop_process(process: subprocess.Popen, *, within: float = 10) -> None:
    """Ask a server to stop (SIGTERM: it finishes what is in flight), and kill it if it is
    still running `within` seconds later."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=within)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class SimulatorServer:
    def __init__(
        self,
        *,
        latency_scale: float = 0.0,
        answer_seconds: float | None = None,
        batch_time_scale: float = 0.01,
        refuse_flex: bool = False,
        startup_timeout: float = 20.0,
    ) -> None:
        """Batches take about a second at the default `batch_time_scale`."""
        self.latency_scale = latency_scale
        self.answer_seconds = answer_seconds
        self.batch_time_scale = batch_time_scale
        self.refuse_flex = refuse_flex
        self.startup_timeout = startup_timeout
        self.host = "127.0.0.1"
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None
        # The server's own output, shown if it fails to start; closed by stop().
        self._log = tempfile.TemporaryFile()  # noqa: SIM115

    @property
    def url(self) -> str:
        """The base URL to give an OpenAI client: `http://127.0.0.1:<port>/v1`."""
        return f"http://{self.host}:{self.port}/v1"

    def start(self) -> SimulatorServer:
        with socket.socket() as listener:
            listener.bind((self.host, 0))
            listener.listen(_BACKLOG)
            self.port = listener.getsockname()[1]
            fd = listener.fileno()
            command = [sys.executable, "-m", "simulator", "--fd", str(fd)]
            command += ["--latency-scale", str(self.latency_scale)]
            if self.answer_seconds is not None:
                command += ["--answer-seconds", str(self.answer_seconds)]
            command += ["--batch-time-scale", str(self.batch_time_scale)]
            if self.refuse_flex:
                command.append("--refuse-flex")
            self._process = subprocess.Popen(
                command,
                cwd=_ROOT,
                pass_fds=(fd,),
                stdout=self._log,
                stderr=subprocess.STDOUT,
            )
        try:
            self._wait_until_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            stop_process(process)
        self._log.close()

    def __enter__(self) -> SimulatorServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _wait_until_ready(self) -> None:
        assert self._process is not None
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(
                    f"the simulator exited with {self._process.returncode}:\n{self._output()}"
                )
            try:
                with urllib.request.urlopen(f"{self.url}/models", timeout=1):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(
            f"the simulator did not answer within {self.startup_timeout} s:\n{self._output()}"
        )

    def _output(self) -> str:
        self._log.seek(0)
        return self._log.read().decode(errors="replace")
