"""The test run's own server start-up: a server is ready only when it answers itself."""

import subprocess
import sys
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.servers import free_port, wait_for_server


def test_free_port_never_hands_out_a_port_twice():
    ports = [free_port() for _ in range(200)]
    assert len(set(ports)) == len(ports)


def test_a_server_whose_port_another_process_answers_on_is_not_ready():
    """The port went to someone else (here a server in this process) before the server bound
    it: the answer on it is not the server's, so waiting fails and stops the server."""
    squatter = ThreadingHTTPServer(("127.0.0.1", 0), SimpleHTTPRequestHandler)
    threading.Thread(target=squatter.serve_forever, daemon=True).start()
    port = squatter.server_address[1]
    server = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        with pytest.raises(RuntimeError, match=f"port {port} was taken"):
            wait_for_server(f"http://127.0.0.1:{port}/", port, server, timeout=10)
        assert server.poll() is not None
    finally:
        squatter.shutdown()
        server.kill()
        server.wait()


def test_a_server_that_answers_on_its_own_port_is_ready():
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_server(f"http://127.0.0.1:{port}/", port, server, timeout=10)
        assert server.poll() is None
    finally:
        server.kill()
        server.wait()
