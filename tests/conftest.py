"""Shared fixtures: one real local AWS stack (a subprocess on loopback) per test session.

``local_stack`` is a ``local_sagemaker.stack.LocalStack``: use ``.client(service)``,
``.endpoint_url``, ``.env()`` and ``.flush()`` (makes metrics and capture records visible
in CloudWatch/S3 immediately). Tests share it, so give resources unique names.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from local_sagemaker.stack import LocalStack


@pytest.fixture(scope="session")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """The local stack, started once per session and stopped at the end."""
    log = tmp_path_factory.mktemp("local_stack") / "local_stack.log"
    with LocalStack(log_path=log) as stack:
        yield stack


@pytest.fixture
def unique_name() -> str:
    """A short unique suffix for resource names on the shared stack."""
    return uuid.uuid4().hex[:8]
