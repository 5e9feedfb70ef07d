"""The stack's loaded models stay bounded however many rollouts a long-lived stack serves."""

from __future__ import annotations

import uuid

import numpy as np
from moto.s3.models import s3_backends
from sklearn.linear_model import LogisticRegression

from canary.models.training import sklearn_tarball
from local_sagemaker import loader
from local_sagemaker.errors import ACCOUNT_ID
from tests.integration.deployed import IMAGE as SKLEARN_IMAGE


def _artifacts(count: int) -> list[str]:
    """``count`` distinct small scikit-learn models in moto's in-process S3."""
    backend, bucket = s3_backends[ACCOUNT_ID]["global"], f"cache-{uuid.uuid4().hex[:8]}"
    backend.create_bucket(bucket, "us-east-1")
    rng, urls = np.random.default_rng(0), []
    for k in range(count):
        x = rng.normal(size=(40, 3))
        model = LogisticRegression().fit(x, (x[:, 0] > k / count).astype(int))
        backend.put_object(bucket, f"m{k}/model.tar.gz", sklearn_tarball(model))
        urls.append(f"s3://{bucket}/m{k}/model.tar.gz")
    return urls


def test_the_cache_keeps_the_latest_loads_and_reloads_an_evicted_model(monkeypatch) -> None:
    monkeypatch.setattr(loader, "CACHED_MODELS", 2)
    cache = loader.ModelCache()
    first, second, third = _artifacts(3)
    kept = cache.get(first, SKLEARN_IMAGE, ACCOUNT_ID)
    assert cache.get(first, SKLEARN_IMAGE, ACCOUNT_ID) is kept  # loaded once
    cache.get(second, SKLEARN_IMAGE, ACCOUNT_ID)
    cache.get(third, SKLEARN_IMAGE, ACCOUNT_ID)
    assert len(cache._models) == 2
    assert {url for url, _ in cache._models} == {second, third}
    again = cache.get(first, SKLEARN_IMAGE, ACCOUNT_ID)
    assert again is not kept and again.n_features == 3  # evicted, then loaded again
