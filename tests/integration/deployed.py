"""A small Champion / Challenger endpoint on the local stack for the integration tests: two
scikit-learn logistic regressions on three features, the champion fitted to the label
``x0 > 0``, the challenger to ``x0 + x1 > 0`` (they disagree on about a quarter of requests)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression

from canary.models.training import sklearn_tarball
from canary.plan import RolloutPlan, parse_plan
from canary.rollout.layout import capture_uri

IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"
ROLE = "arn:aws:iam::123456789012:role/local-test"


def model(seed: int) -> LogisticRegression:
    """Variant ``seed``'s model (0: the champion, 1: the challenger)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(200, 3))
    return LogisticRegression().fit(x, (x[:, 0] + seed * x[:, 1] > 0).astype(int))


def artifact(seed: int) -> bytes:
    """Variant ``seed``'s model as a SageMaker scikit-learn artifact (model.tar.gz)."""
    return sklearn_tarball(model(seed))


@contextmanager
def deployed(
    make_deployer: Callable[..., Any], shadow: bool, capture_percent: int = 100, **fields: Any
) -> Iterator[RolloutPlan]:
    """A Champion / Challenger endpoint (the challenger a shadow variant when ``shadow``) with
    Data Capture of ``capture_percent`` of requests where a plan for it (with the form
    ``fields`` given) looks, in a fresh bucket; deleted afterwards."""
    deployer = make_deployer("gates", ROLE)
    try:  # whatever fails on the way, what was made is deleted
        endpoint_name = f"ge-{uuid.uuid4().hex[:10]}"
        plan = parse_plan({"bucket": deployer.bucket, "endpoint_name": endpoint_name, **fields})
        models = {
            name: (deployer.model(deployer.upload(artifact(i)), IMAGE), 1.0)
            for i, name in enumerate(plan.variants)
        }
        champion, challenger = plan.variants
        serving = {champion: models[champion]} if shadow else models
        mirrored = {challenger: models[challenger]} if shadow else None
        capture = {"EnableCapture": True, "InitialSamplingPercentage": capture_percent,
                   "DestinationS3Uri": capture_uri(plan),
                   "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
                   "CaptureContentTypeHeader": {"CsvContentTypes": ["text/csv"]}}  # fmt: skip
        deployer.endpoint(deployer.config(serving, capture, shadow=mirrored), name=endpoint_name)
        yield plan
    finally:
        deployer.cleanup()
