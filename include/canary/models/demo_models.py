"""The demo's generated models and data, built once per machine and reused.

Training is deterministic, so the cache key is the code that trains (the ``churn`` and
``training`` modules' source) plus the seed: change either and the models are rebuilt.
"""

from __future__ import annotations

import inspect
import os
from pathlib import Path

from canary.models import churn, training
from canary.models.training import DemoModels, demo_models
from canary.plan import short_digest

_MODELS = ("champion", "challenger", "worse", "sklearn_challenger")


def cache_root() -> Path:
    return Path(os.environ.get("CANARY_CACHE_DIR", str(Path.home() / ".cache" / "canary")))


def cached_demo_models(seed: int = 0) -> DemoModels:
    """The demo models for ``seed``, trained on first use and read from disk afterwards."""
    source = inspect.getsource(churn) + inspect.getsource(training)
    digest = short_digest(f"{seed}|{source}", 12)
    folder = cache_root() / "demo" / f"{seed}-{digest}"
    done = folder / "COMPLETE"
    if not done.is_file():
        demo_models(folder, seed)
        done.touch()
    return DemoModels(
        test_csv=folder / "test.csv",
        payload_csv=folder / "test_payload.csv",
        traffic_csv=folder / "traffic.csv",
        **{name: folder / name / "model.tar.gz" for name in _MODELS},
    )
