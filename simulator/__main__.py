"""`python -m simulator --port 8100 [--latency-scale 1.0 | --answer-seconds S] [...]`: see --help."""

from __future__ import annotations

import argparse

from simulator.server import serve


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m simulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8100)
    parser.add_argument("--latency-scale", type=float, default=1.0)
    parser.add_argument(
        "--answer-seconds",
        type=float,
        help="every live answer takes this long, whatever its length (instead of --latency-scale)",
    )
    parser.add_argument("--batch-time-scale", type=float, default=1.0)
    parser.add_argument("--refuse-flex", action="store_true", help="429 every flex request")
    parser.add_argument("--fd", type=int, help="serve on this inherited listening socket")
    args = parser.parse_args(argv)
    serve(
        host=args.host,
        port=args.port,
        latency_scale=args.latency_scale,
        answer_seconds=args.answer_seconds,
        batch_time_scale=args.batch_time_scale,
        refuse_flex=args.refuse_flex,
        fd=args.fd,
    )


if __name__ == "__main__":
    main()
