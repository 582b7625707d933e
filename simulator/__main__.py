"""`python -m simulator --port 8100 --latency-scale 1.0 [--host 127.0.0.1]`."""

from __future__ import annotations

import argparse

from simulator.server import serve


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m simulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8100)
    parser.add_argument("--latency-scale", type=float, default=1.0)
    parser.add_argument("--fd", type=int, help="serve on this inherited listening socket")
    args = parser.parse_args(argv)
    serve(host=args.host, port=args.port, latency_scale=args.latency_scale, fd=args.fd)


if __name__ == "__main__":
    main()
