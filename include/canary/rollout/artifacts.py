"""Where each model's artifact lives: a local ``model.tar.gz`` is uploaded, an S3 URI is checked,
a model package is resolved to its image and artifact.

Uploads are content-addressed per endpoint (the key carries the endpoint and the file's digest), so
a retry or a re-run with the same file finds the object already there and uploads nothing.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from canary.aws_errors import is_missing
from canary.plan import ModelSpec, RolloutPlan


class ArtifactError(ValueError):
    """A model artifact that cannot be used; the message names it."""


@dataclass(frozen=True)
class StagedArtifact:
    """A model artifact ready for CreateModel. ``uploaded`` marks an object this run created."""

    role: str
    model_data_url: str
    image: str | None
    uploaded: bool


def ensure_bucket(s3: Any, bucket: str, region: str) -> bool:
    """Create the bucket when missing; True when created here."""
    try:
        s3.head_bucket(Bucket=bucket)
        return False
    except ClientError as error:
        if not is_missing(error):
            raise
    options = (
        {}
        if region == "us-east-1"
        else {"CreateBucketConfiguration": {"LocationConstraint": region}}
    )
    s3.create_bucket(Bucket=bucket, **options)
    return True


def stage_artifact(s3: Any, sm: Any, plan: RolloutPlan, spec: ModelSpec) -> StagedArtifact:
    """Make one side's artifact available in S3: where it is and, for packages, its image."""
    if spec.is_model_package:
        image, url = resolve_model_package(sm, spec.source)
        return StagedArtifact(spec.role, url, image, uploaded=False)
    if spec.source.startswith("s3://"):
        _require_object(s3, spec.source, field=f"{spec.role}_source")
        return StagedArtifact(spec.role, spec.source, None, uploaded=False)
    return _upload(s3, plan, spec)


def stage_all(s3: Any, sm: Any, plan: RolloutPlan, specs: list[ModelSpec]) -> list[StagedArtifact]:
    """Stage every side, or none: when one side fails (a missing challenger artifact), what this
    call uploaded for the others is deleted before the error goes on, so a failed run leaves no
    staged copy behind (its cleanup never learns of uploads from a task that failed)."""
    staged: list[StagedArtifact] = []
    try:
        for spec in specs:
            staged.append(stage_artifact(s3, sm, plan, spec))
    except Exception:
        for artifact in staged:
            if artifact.uploaded:
                bucket, key = split_s3_uri(artifact.model_data_url)
                s3.delete_object(Bucket=bucket, Key=key)
        raise
    return staged


def resolve_model_package(sm: Any, arn: str) -> tuple[str, str]:
    """The serving image and artifact of a registered model package version."""
    try:
        package = sm.describe_model_package(ModelPackageName=arn)
    except ClientError as error:
        raise ArtifactError(f"model package {arn!r} cannot be read: {error}") from error
    containers = package.get("InferenceSpecification", {}).get("Containers", [])
    if not containers or not containers[0].get("ModelDataUrl"):
        raise ArtifactError(f"model package {arn!r} has no container with a ModelDataUrl")
    return containers[0]["Image"], containers[0]["ModelDataUrl"]


def _upload(s3: Any, plan: RolloutPlan, spec: ModelSpec) -> StagedArtifact:
    path = Path(spec.source).expanduser()
    if not path.is_file():
        raise ArtifactError(f"{spec.role}_source: no such file {str(path)!r}")
    digest = _sha256(path)
    # Per endpoint: cleanup may delete what a run uploaded, which must never be another
    # endpoint's live artifact, however identical the file.
    key = f"{plan.prefix}/{plan.endpoint_name}/artifacts/{digest[:16]}/model.tar.gz"
    url = f"s3://{plan.bucket}/{key}"
    if _exists(s3, plan.bucket, key):
        return StagedArtifact(spec.role, url, None, uploaded=False)
    s3.upload_file(str(path), plan.bucket, key)
    return StagedArtifact(spec.role, url, None, uploaded=True)


def split_s3_uri(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


def _require_object(s3: Any, uri: str, field: str) -> None:
    bucket, key = split_s3_uri(uri)
    if not _exists(s3, bucket, key):
        raise ArtifactError(f"{field}: {uri} does not exist or cannot be read")


def _exists(s3: Any, bucket: str, key: str) -> bool:
    try:
        s3.head_object(Bucket=bucket, Key=key)
        return True
    except ClientError as error:
        if is_missing(error):
            return False
        raise


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
