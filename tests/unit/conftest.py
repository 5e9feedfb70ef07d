"""The unit tier runs in milliseconds per test: no sockets, no subprocesses, enforced here.

A test that reaches for the network or starts a process belongs in ``tests/integration`` or
``tests/e2e``; rather than let it slow this tier down quietly, it fails naming what it tried.
"""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator
from typing import Any

import croniter  # noqa: F401 - its import shells out once (platform.architecture): not a test's doing
import joblib
import pytest

# joblib counts physical cores once (lscpu) and caches the count: not a test's doing either
joblib.cpu_count(only_physical_cores=True)


class TierViolation(AssertionError):
    """A unit test tried to use the network or start a process."""


def _refuse(what: str) -> Any:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise TierViolation(f"unit tests may not {what}: move the test to tests/integration")

    return refuse


@pytest.fixture(scope="module", autouse=True)
def _no_sockets_or_processes() -> Iterator[None]:
    """Module scope: it is in place before any module fixture (a DagBag parse) runs, too."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket.socket, "connect", _refuse("open a connection"))
        patch.setattr(socket.socket, "connect_ex", _refuse("open a connection"))
        patch.setattr(socket, "getaddrinfo", _refuse("look a host up"))
        patch.setattr(socket.socket, "bind", _refuse("listen on a socket"))
        patch.setattr(subprocess.Popen, "__init__", _refuse("start a subprocess"))
        patch.setattr(os, "system", _refuse("start a subprocess"))
        patch.setattr(os, "fork", _refuse("fork a process (a process pool)"))
        yield
