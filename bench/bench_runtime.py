"""Runtime overhead: our InvokeEndpoint path vs a model-only ceiling server, same run.

Both servers use the same HTTP technology (werkzeug's threaded server with the stack's quiet
request handler) and the same model call (``local_sagemaker.loader`` + ``payload``); the ceiling
does nothing else: no routing, metrics or capture. The same bounded, concurrent loopback
client load drives both in interleaved rounds so machine noise hits both alike.

Prints one JSON line: throughput ratio, our rps, the ceiling's rps, and OverheadLatency p50/p99
as our runtime measured it (time in our server outside the model call). The ceiling times its
own non-model part (WSGI call to the start of decode: the body read) with two clock reads, as
``ceiling_nonmodel_p50/p99_ms``, for comparison. Load average is reported at the start and end
of the measured rounds, with the CPU count.
"""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROUNDS = 8
PHASE_S = 1.0
CLIENTS = 4
MAX_REQUESTS_PER_PHASE = 20_000
N_FEATURES = 10
ROW = ",".join(f"{v:.3f}" for v in np.linspace(-1, 1, N_FEATURES)).encode()
AUTH = "AWS4-HMAC-SHA256 Credential=bench/20250101/us-east-1/sagemaker/aws4_request"
XGB_IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"


def _artifact() -> bytes:
    import xgboost as xgb

    from canary.models.training import xgboost_tarball

    rng = np.random.default_rng(0)
    x = rng.normal(size=(2000, N_FEATURES))
    y = (x[:, 0] + x[:, 1] > 0).astype(int)
    params = {"objective": "binary:logistic", "max_depth": 4, "nthread": 1}
    return xgboost_tarball(xgb.train(params, xgb.DMatrix(x, label=y), 50))


def serve_ceiling(port: int, tar_path: str) -> None:
    """Model-only server: parse payload, predict, encode. Nothing else."""
    from werkzeug.serving import make_server

    from local_sagemaker.artifact_store import Artifact
    from local_sagemaker.loader import load_model
    from local_sagemaker.payload import decode, encode, response_type
    from local_sagemaker.server import QuietHandler

    model = load_model(Artifact(tar_path, "etag", Path(tar_path).read_bytes()), XGB_IMAGE)
    nonmodel_us: list[float] = []  # list.append is atomic; no lock on the request path

    def app(environ, start_response):
        started = time.perf_counter()
        if environ["REQUEST_METHOD"] == "GET":  # /stats: the non-model bracket, then reset
            out = json.dumps(_summary_ms(nonmodel_us)).encode()
            nonmodel_us.clear()
            start_response("200 OK", [("Content-Length", str(len(out)))])
            return [out]
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        began = time.perf_counter()
        kind = response_type(environ.get("HTTP_ACCEPT"))
        out = encode(model.predict(decode(body, environ.get("CONTENT_TYPE"))), kind)
        nonmodel_us.append((began - started) * 1e6)  # all that follows is the model's
        start_response("200 OK", [("Content-Type", kind), ("Content-Length", str(len(out)))])
        return [out]

    server = make_server("127.0.0.1", port, app, threaded=True, request_handler=QuietHandler)
    print("ready", flush=True)
    server.serve_forever()


def _summary_ms(values: list[float]) -> dict[str, float]:
    if not values:
        return {"count": 0}
    p50, p99 = np.percentile(values, [50, 99]) / 1000
    return {"count": len(values), "p50": round(float(p50), 3), "p99": round(float(p99), 3)}


def _ceiling_stats(port: int) -> dict[str, float]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/stats")
    stats = json.loads(conn.getresponse().read())
    conn.close()
    return stats


def _load(port: int, path: str, seconds: float) -> int:
    """CLIENTS threads POST the same row for ``seconds``; returns successful requests."""
    stop = time.monotonic() + seconds
    counts = [0] * CLIENTS
    headers = {"Content-Type": "text/csv", "Accept": "text/csv", "Authorization": AUTH}

    def worker(i: int) -> None:
        while time.monotonic() < stop and counts[i] < MAX_REQUESTS_PER_PHASE:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.request("POST", path, body=ROW, headers=headers)
            response = conn.getresponse()
            response.read()
            conn.close()
            if response.status == 200:
                counts[i] += 1

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts)


def _deploy(stack, tar: bytes) -> str:
    s3, sm = stack.client("s3"), stack.client("sagemaker")
    s3.create_bucket(Bucket="bench-runtime")
    s3.put_object(Bucket="bench-runtime", Key="model.tar.gz", Body=tar)
    container = {"Image": XGB_IMAGE, "ModelDataUrl": "s3://bench-runtime/model.tar.gz"}
    role = "arn:aws:iam::123456789012:role/bench"
    for name in ("champion", "challenger"):
        sm.create_model(ModelName=name, ExecutionRoleArn=role, PrimaryContainer=container)
    variants = [
        {
            "VariantName": v,
            "ModelName": m,
            "InitialInstanceCount": 1,
            "InstanceType": "ml.m5.large",
            "InitialVariantWeight": 1.0,
        }
        for v, m in (("Variant1", "champion"), ("Variant2", "challenger"))
    ]
    capture = {
        "EnableCapture": True,
        "InitialSamplingPercentage": 100,
        "DestinationS3Uri": "s3://bench-runtime/capture",
        "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
        "CaptureContentTypeHeader": {"CsvContentTypes": ["text/csv"]},
    }
    sm.create_endpoint_config(
        EndpointConfigName="bench", ProductionVariants=variants, DataCaptureConfig=capture
    )
    sm.create_endpoint(EndpointName="bench", EndpointConfigName="bench")
    stack.client("sagemaker-runtime").invoke_endpoint(EndpointName="bench", Body=ROW)
    return "/endpoints/bench/invocations"


def main() -> None:
    from local_sagemaker.stack import EmbeddedStack, free_port

    tar = _artifact()
    tar_path = Path("/tmp") / f"bench_runtime_{free_port()}.tar.gz"
    tar_path.write_bytes(tar)
    port = free_port()
    ceiling = subprocess.Popen(
        [sys.executable, __file__, "--ceiling", str(port), str(tar_path)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert ceiling.stdout is not None and ceiling.stdout.readline().strip() == "ready"
        with EmbeddedStack() as stack:
            path = _deploy(stack, tar)
            _load(stack.port, path, 0.5)  # warm both before measuring
            _load(port, "/invocations", 0.5)
            stack.admin("GET", "stats?reset=1")
            _ceiling_stats(port)  # reset
            load_start = os.getloadavg()[0]
            ours = ceiling_n = 0
            for _ in range(ROUNDS):
                ours += _load(stack.port, path, PHASE_S)
                ceiling_n += _load(port, "/invocations", PHASE_S)
            stats = stack.admin("GET", "stats")["latency_us"]
            ceiling_stats = _ceiling_stats(port)
    finally:
        ceiling.terminate()
        ceiling.wait(timeout=10)
        tar_path.unlink(missing_ok=True)
    overhead = [s["OverheadLatency"] for s in stats.values()]
    model = [s["ModelLatency"] for s in stats.values()]
    seconds = ROUNDS * PHASE_S
    print(
        json.dumps(
            {
                "bench": "runtime",
                "throughput_ratio_vs_model_only": round(ours / ceiling_n, 3),
                "overhead_p99_ms": round(max(o["p99"] for o in overhead) / 1000, 3),
                "overhead_p50_ms": round(max(o["p50"] for o in overhead) / 1000, 3),
                "ceiling_nonmodel_p99_ms": ceiling_stats.get("p99"),
                "ceiling_nonmodel_p50_ms": ceiling_stats.get("p50"),
                "model_latency_p50_ms": round(max(m["p50"] for m in model) / 1000, 3),
                "rps": round(ours / seconds, 1),
                "rps_model_only": round(ceiling_n / seconds, 1),
                "requests_measured": sum(o["count"] for o in overhead),
                "clients": CLIENTS,
                "loadavg_1m_start": round(load_start, 2),
                "loadavg_1m": round(os.getloadavg()[0], 2),
                "cpus": os.cpu_count(),
                "rounds": ROUNDS,
                "phase_s": PHASE_S,
            }
        )
    )


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--ceiling":
        serve_ceiling(int(sys.argv[2]), sys.argv[3])
    else:
        main()
