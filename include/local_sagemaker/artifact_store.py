"""Read model artifacts straight out of moto's in-process S3 backend.

The runtime lives in the same process as moto, so an HTTP round trip (and boto3 on the hot
path) would only add latency and a second source of truth. ETags make the model cache exact:
a re-uploaded artifact gets a new ETag and therefore a fresh load.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from moto.s3.models import s3_backends

from local_sagemaker.errors import ACCOUNT_ID


class ArtifactError(Exception):
    """The artifact named by a model's ModelDataUrl is missing or unreadable."""


@dataclass(frozen=True)
class Artifact:
    """The bytes of one S3 object together with the identity used for caching."""

    url: str
    etag: str
    data: bytes


def split_s3_url(url: str) -> tuple[str, str]:
    """Split ``s3://bucket/key`` into bucket and key, naming the URL when it is malformed."""
    if not url.startswith("s3://"):
        raise ArtifactError(f"ModelDataUrl {url!r} is not an s3:// URL")
    bucket, _, key = url[len("s3://") :].partition("/")
    if not bucket or not key:
        raise ArtifactError(f"ModelDataUrl {url!r} must name a bucket and a key")
    return bucket, key


def _s3_key(url: str, account_id: str) -> Any:
    """moto's FakeKey for the URL (untyped in moto)."""
    bucket, key = split_s3_url(url)
    backend = s3_backends[account_id]["global"]
    try:
        found = backend.get_object(bucket, key)
    except Exception as exc:  # moto raises MissingBucket / MissingKey subclasses
        raise ArtifactError(f"model artifact {url} not found: {type(exc).__name__}") from exc
    if found is None:
        raise ArtifactError(f"model artifact {url} not found")
    return found


def artifact_etag(url: str, account_id: str = ACCOUNT_ID) -> str:
    """Current ETag of the artifact, cheap enough to check when a routing table is built."""
    return str(_s3_key(url, account_id).etag)


def read_artifact(url: str, account_id: str = ACCOUNT_ID) -> Artifact:
    """Fetch the artifact's bytes and ETag from moto's S3 backend."""
    key = _s3_key(url, account_id)
    return Artifact(url=url, etag=str(key.etag), data=bytes(key.value))
