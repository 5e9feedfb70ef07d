"""``EmbeddedStack``: ``python -m local_sagemaker`` as a real subprocess on a free loopback port.

Used by tests (the session-scoped ``local_stack`` fixture), benchmarks and the demo::

    with EmbeddedStack() as stack:
        s3 = stack.client("s3")
        os.environ.update(stack.env())   # or pass it to a child process

Credentials are moto's dummies and live only here, as the house rules ask.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from local_sagemaker.profile import profile_from_env

REGION = "us-east-1"
_DUMMY_KEY = "testing"  # moto accepts any key; this is not a credential


def free_port(host: str = "127.0.0.1") -> int:
    """A port the OS says is free right now on loopback."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class EmbeddedStackError(RuntimeError):
    """The local stack subprocess failed to start or answer."""


class EmbeddedStack:
    """Context manager around a local_sagemaker subprocess on 127.0.0.1."""

    def __init__(
        self,
        port: int | None = None,
        start_timeout: float = 60.0,
        flush_interval: float = 0.5,
        log_path: str | Path | None = None,
        profile_env: Mapping[str, str] | None = None,
    ) -> None:
        self.host = "127.0.0.1"
        # LOCAL_SAGEMAKER_PROFILE and its knobs; None: whatever this process's environment says
        self.profile_env = dict(profile_env or {})
        self.profile = profile_from_env({**os.environ, **self.profile_env})
        self.port = port or free_port()
        self.start_timeout = start_timeout
        self.flush_interval = flush_interval
        self.log_path = Path(log_path) if log_path else None
        self._proc: subprocess.Popen | None = None
        self._log: Any = None

    @property
    def endpoint_url(self) -> str:
        """The one URL serving every AWS service."""
        return f"http://{self.host}:{self.port}"

    def env(self) -> dict[str, str]:
        """Environment for a process (or boto3) that should talk to this stack."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
            "AWS_ACCESS_KEY_ID": _DUMMY_KEY,
            "AWS_SECRET_ACCESS_KEY": _DUMMY_KEY,
        }

    def client(self, service: str, **kwargs: Any) -> Any:
        """A boto3 client bound to this stack (kwargs go to ``boto3.client``).

        By default botocore does not retry, so every call is exactly one request (tests count
        requests against CloudWatch); pass your own ``config`` to change that.
        """
        kwargs.setdefault("config", Config(retries={"total_max_attempts": 1, "mode": "standard"}))
        return boto3.client(
            service,
            endpoint_url=self.endpoint_url,
            region_name=REGION,
            aws_access_key_id=_DUMMY_KEY,
            aws_secret_access_key=_DUMMY_KEY,
            **kwargs,
        )

    def start(self) -> EmbeddedStack:
        """Spawn the server and wait until it answers its health probe."""
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        self._log = out if self.log_path else None
        cmd = [sys.executable, "-m", "local_sagemaker", "--host", self.host]
        cmd += ["--port", str(self.port), "--flush-interval", str(self.flush_interval)]
        env = {**os.environ, **self.profile_env, "PYTHONUNBUFFERED": "1"}
        env.pop("AWS_ENDPOINT_URL", None)
        self._proc = subprocess.Popen(cmd, stdout=out, stderr=out, env=env)
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                raise EmbeddedStackError(
                    f"local_sagemaker exited with code {self._proc.returncode} on port {self.port}"
                )
            try:
                answered = self.admin("GET", "health", timeout=1.0).get("pid")
            except OSError:
                time.sleep(0.05)
                continue
            if answered == self._proc.pid:
                return
            # the port was free when chosen; another process took it before ours bound it
            self.stop()
            raise EmbeddedStackError(
                f"port {self.port} is another process's (pid {answered}), not our stack's"
            )
        self.stop()
        raise EmbeddedStackError(f"local_sagemaker did not answer on {self.endpoint_url} in time")

    def admin(self, method: str, route: str, timeout: float = 10.0) -> dict[str, Any]:
        """Call the stack's own admin API (``health``, ``flush``, ``stats`` of raw latencies)."""
        url = f"{self.endpoint_url}/_local_sagemaker/{route}"
        request = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read())

    def flush(self) -> dict[str, int]:
        """Make every metric and capture record served so far visible in CloudWatch/S3 now."""
        return self.admin("POST", "flush")

    def stop(self) -> None:
        """Terminate the server (it flushes on SIGTERM) and reap it."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> EmbeddedStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
