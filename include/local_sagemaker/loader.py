"""Turn a ``model.tar.gz`` into something that predicts, as SageMaker's built-in containers do.

Two layouts are understood:

* XGBoost (``sagemaker-xgboost`` images): a file ``xgboost-model`` in the tarball, saved with
  ``Booster.save_model`` (JSON/UBJ/binary) or pickled (older containers pickled the Booster).
* scikit-learn (``sagemaker-scikit-learn`` images): a joblib file (``*.joblib``, ``*.pkl``).

The loader is picked from the container image when it says which framework it is, otherwise
from what the tarball holds. Loaded models are cached per artifact URL + ETag.
"""

from __future__ import annotations

import io
import pickle
import tarfile
import threading
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np

from local_sagemaker.artifact_store import Artifact, ArtifactError, artifact_etag, read_artifact

XGBOOST_FILE = "xgboost-model"
SKLEARN_SUFFIXES = (".joblib", ".pkl", ".pickle")


def _xgb() -> Any:
    """xgboost, imported on first use: it drags in scikit-learn/scipy/pandas (seconds), which
    must not delay the stack's readiness; ``warm_up`` imports it in the background instead."""
    import xgboost

    return xgboost


def warm_up() -> None:
    """Import the model frameworks ahead of the first request (run in a background thread)."""
    _xgb()
    import joblib  # noqa: F401


class ModelInputError(ValueError):
    """The model rejected the payload (wrong feature count, bad values)."""


@dataclass
class LoadedModel:
    """A ready model: ``predict`` maps an (n, features) float array to scores."""

    framework: str
    artifact_url: str
    etag: str
    n_features: int | None
    _impl: Any

    def predict(self, rows: np.ndarray) -> np.ndarray:
        """Score rows; a wrong feature count is the caller's fault, so say so clearly."""
        if self.n_features is not None and rows.shape[1] != self.n_features:
            raise ModelInputError(
                f"feature count mismatch: got {rows.shape[1]} columns, "
                f"the model expects {self.n_features}"
            )
        if self.framework == "xgboost":
            return self._predict_xgboost(rows)
        return self._predict_sklearn(rows)

    def _predict_xgboost(self, rows: np.ndarray) -> np.ndarray:
        try:
            return np.asarray(self._impl.inplace_predict(rows))
        except _xgb().core.XGBoostError as exc:
            raise ModelInputError(str(exc).splitlines()[0]) from exc

    def _predict_sklearn(self, rows: np.ndarray) -> np.ndarray:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                if hasattr(self._impl, "predict_proba"):
                    proba = np.asarray(self._impl.predict_proba(rows))
                    return proba[:, 1] if proba.shape[1] == 2 else proba
                return np.asarray(self._impl.predict(rows))
        except ValueError as exc:
            raise ModelInputError(str(exc).splitlines()[0]) from exc


def framework_from_image(image: str | None) -> str | None:
    """Framework named by a container image URI, or None when the image does not say."""
    name = (image or "").lower()
    if "xgboost" in name:
        return "xgboost"
    if "scikit-learn" in name or "sklearn" in name:
        return "sklearn"
    return None


def _members(data: bytes, url: str) -> dict[str, bytes]:
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tar:
            files = {}
            for member in tar.getmembers():
                handle = tar.extractfile(member) if member.isfile() else None
                if handle is not None:
                    files[member.name.removeprefix("./")] = handle.read()
            return files
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise ArtifactError(f"model artifact {url} is not a readable tar.gz: {exc}") from exc


def _framework_from_members(files: dict[str, bytes]) -> str | None:
    names = [name.rsplit("/", 1)[-1] for name in files]
    if XGBOOST_FILE in names:
        return "xgboost"
    if any(name.endswith(SKLEARN_SUFFIXES) for name in names):
        return "sklearn"
    return None


def _pick(files: dict[str, bytes], framework: str, url: str) -> bytes:
    for name, blob in files.items():
        base = name.rsplit("/", 1)[-1]
        if (framework == "xgboost" and base == XGBOOST_FILE) or (
            framework == "sklearn" and base.endswith(SKLEARN_SUFFIXES)
        ):
            return blob
    wanted = XGBOOST_FILE if framework == "xgboost" else "a *.joblib file"
    raise ArtifactError(f"model artifact {url} holds no {wanted} (found {sorted(files)})")


def _load_xgboost(blob: bytes, url: str) -> Any:
    xgb = _xgb()
    booster = xgb.Booster()
    try:
        booster.load_model(bytearray(blob))
        return booster
    except xgb.core.XGBoostError:
        pass
    try:
        obj = pickle.loads(blob)
    except Exception as exc:
        raise ArtifactError(f"model artifact {url}: {XGBOOST_FILE} is corrupt: {exc}") from exc
    if isinstance(obj, xgb.XGBModel):
        obj = obj.get_booster()
    if not isinstance(obj, xgb.Booster):
        raise ArtifactError(f"model artifact {url}: {XGBOOST_FILE} is a {type(obj).__name__}")
    return obj


def _load_sklearn(blob: bytes, url: str) -> Any:
    import joblib

    try:
        model = joblib.load(io.BytesIO(blob))
    except Exception as exc:
        raise ArtifactError(f"model artifact {url}: joblib model is corrupt: {exc}") from exc
    if not hasattr(model, "predict"):
        raise ArtifactError(f"model artifact {url}: {type(model).__name__} has no predict()")
    return model


def load_model(artifact: Artifact, image: str | None = None) -> LoadedModel:
    """Build a LoadedModel from artifact bytes, choosing the loader from image or contents."""
    files = _members(artifact.data, artifact.url)
    framework = framework_from_image(image) or _framework_from_members(files)
    if framework is None:
        raise ArtifactError(
            f"model artifact {artifact.url}: cannot tell the framework from image {image!r} "
            f"or contents {sorted(files)}"
        )
    blob = _pick(files, framework, artifact.url)
    if framework == "xgboost":
        impl: Any = _load_xgboost(blob, artifact.url)
        # One request = a few rows: OpenMP fan-out costs more than it saves and makes
        # concurrent request threads fight over cores, so predict single-threaded.
        impl.set_param({"nthread": 1})
        n_features = impl.num_features() or None
    else:
        impl = _load_sklearn(blob, artifact.url)
        n_features = getattr(impl, "n_features_in_", None)
    return LoadedModel(framework, artifact.url, artifact.etag, n_features, impl)


CACHED_MODELS = 32  # far more than one rollout serves at once (two variants and a shadow)


class ModelCache:
    """Loaded models keyed by (artifact URL, ETag); one load per artifact even under load. It
    keeps the :data:`CACHED_MODELS` most recently loaded: a long-lived stack loads a new
    challenger every rollout."""

    def __init__(self) -> None:
        self._models: OrderedDict[tuple[str, str], LoadedModel] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, url: str, image: str | None, account_id: str) -> LoadedModel:
        """Return the cached model for the artifact's current bytes, loading it if new."""
        key = (url, artifact_etag(url, account_id))
        model = self._models.get(key)
        if model is not None:
            return model
        with self._lock:
            model = self._models.get(key)
            if model is None:
                model = load_model(read_artifact(url, account_id), image)
                self._drop_stale(url)
                self._models[key] = model
                while len(self._models) > CACHED_MODELS:
                    self._models.popitem(last=False)
        return model

    def _drop_stale(self, url: str) -> None:
        for key in [k for k in self._models if k[0] == url]:
            del self._models[key]
