"""``python -m local_sagemaker --host 127.0.0.1 --port 4566``: run the local AWS in the foreground.

The server binds loopback only. The single exception is ``--container-bind``, meant only for
docker-compose, where the stack must listen on the container's interface so other containers
can reach it; nothing else sets it.
"""

from __future__ import annotations

import argparse
import gc
import ipaddress
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable

from local_sagemaker.profile import AWS, INSTANT, PROFILE_ENV, ProfileError, profile_from_env


def is_loopback(host: str) -> bool:
    """True for localhost and any address in 127.0.0.0/8 or ::1."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """CLI options; refuses a non-loopback host unless --container-bind is given."""
    parser = argparse.ArgumentParser(prog="python -m local_sagemaker", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=4566)
    parser.add_argument("--flush-interval", type=float, default=0.5, help="seconds, <= 1")
    parser.add_argument(
        "--profile",
        choices=(INSTANT, AWS),
        default=None,
        help=f"timing of the control plane and telemetry (default: ${PROFILE_ENV} or instant)",
    )
    parser.add_argument(
        "--container-bind",
        action="store_true",
        help="allow a non-loopback --host (docker-compose only: the container's interface)",
    )
    args = parser.parse_args(argv)
    if not is_loopback(args.host) and not args.container_bind:
        parser.error(
            f"--host {args.host!r} is not a loopback address; the stack binds loopback only"
        )
    if not 0 <= args.port <= 65535:
        parser.error(f"--port {args.port} is out of range 0..65535")
    if not 0 < args.flush_interval <= 1:
        parser.error(f"--flush-interval {args.flush_interval} must be in (0, 1] seconds")
    try:
        args.profile = profile_from_env(name=args.profile)
    except ProfileError as error:
        parser.error(str(error))
    return args


def warm_and_freeze(warm_up: Callable[[], None]) -> None:
    """Import the model frameworks, then move everything alive into the GC's permanent generation.

    moto, botocore and xgboost/scikit-learn leave a heap of a few hundred thousand long-lived
    objects; each full collection walked all of them while holding the GIL (measured 180-300
    ms under the bench load, stalling every in-flight request). Frozen objects are never
    scanned again, so collections only see what the process allocated since.
    """
    warm_up()
    gc.collect()
    gc.freeze()


def main(argv: list[str] | None = None) -> int:
    """Serve until SIGINT/SIGTERM, then flush pending metrics and capture and exit 0."""
    args = parse_args(argv)
    # Imported after validation so a refused host fails fast, before moto loads.
    from local_sagemaker.loader import warm_up
    from local_sagemaker.server import build_server, flush

    # Python's own 5 ms GIL switch interval. The request path between reading the body and
    # answering has no blocking call, so threads hand the GIL over at socket I/O and inside
    # the model call, outside the OverheadLatency bracket. A short interval (0.5 ms, the old
    # default) forces handovers in the middle of that bracket instead: bench p99 1.33 ms
    # at 0.5 ms vs 0.16 ms at 5 ms, same run conditions (loadavg ~6 on 2 CPUs).
    sys.setswitchinterval(float(os.environ.get("LOCAL_SAGEMAKER_SWITCH_INTERVAL_S", "0.005")))
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    server, flusher = build_server(args.host, args.port, args.flush_interval, args.profile)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    serving = threading.Thread(target=server.serve_forever, name="http", daemon=True)
    serving.start()
    flusher.start()
    threading.Thread(target=warm_and_freeze, args=(warm_up,), name="warm-up", daemon=True).start()
    host, port = server.server_address[:2]
    print(f"local_sagemaker listening on http://{host}:{port} ({args.profile.name})", flush=True)
    stop.wait()
    server.shutdown()
    flusher.stopped.set()
    flush(flusher.runtime)
    return 0


if __name__ == "__main__":
    sys.exit(main())
