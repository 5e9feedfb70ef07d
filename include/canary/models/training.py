"""Train churn models and package them exactly as SageMaker's serving containers expect.

Why: a rollout is only meaningful with models whose quality really differs, served from artifacts
in the real SageMaker layouts, so the same ``model.tar.gz`` works on AWS and in the local stack.

Layouts:
- built-in XGBoost: ``model.tar.gz`` holding one member ``xgboost-model``. We write XGBoost's
  **JSON** model format (the only format both a 1.7-era container, which sniffs the file's first
  byte, and xgboost 3 load); the single-output ``base_score`` is written as a scalar because
  xgboost >= 3.1 writes a one-element vector that 1.x parsers reject. Models are trained on
  plain arrays in ``churn.FEATURES`` order, without feature names, like the built-in algorithm
  trained from CSV, so any CSV row can be scored.
- scikit-learn: ``model.tar.gz`` holding ``model.joblib`` (a fitted estimator, ``predict_proba``).

Threads: ``DEFAULT_NTHREAD`` is 1. On our 2-core CI box shared with pytest-xdist and the local
stack, OpenMP with 2 threads measured 3-13x *slower* than 1 thread for these small data sets
(spinning threads fight over the cores); pass ``nthread=2`` on an idle machine if you like.
"""

from __future__ import annotations

import io
import json
import tarfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import joblib
import numpy as np
import pandas as pd
import xgboost as xgb
from sklearn.base import ClassifierMixin
from sklearn.ensemble import HistGradientBoostingClassifier
from threadpoolctl import threadpool_limits

from canary.models import churn
from canary.models.evaluation import ClassificationMetrics, classification_metrics
from canary.plan import Framework

XGB_MODEL_FILE: Final[str] = "xgboost-model"
SKLEARN_MODEL_FILE: Final[str] = "model.joblib"
DEFAULT_NTHREAD: Final[int] = 1

_BASE_PARAMS: Final[dict[str, Any]] = {
    "objective": "binary:logistic",
    "eval_metric": "logloss",
    "tree_method": "hist",
}
#: XGBoost's defaults and the short training of old examples: what a first model usually is.
CHAMPION_PARAMS: Final[dict[str, Any]] = {"max_depth": 6, "eta": 0.3}
CHAMPION_ROUNDS: Final[int] = 10
#: Nightly search space: a few regularised candidates; rounds come from early stopping.
DEFAULT_GRID: Final[tuple[dict[str, Any], ...]] = (
    {"max_depth": 3, "eta": 0.15, "min_child_weight": 3, "subsample": 0.8, "colsample_bytree": 0.8},
    {"max_depth": 4, "eta": 0.15, "min_child_weight": 3, "subsample": 0.8, "colsample_bytree": 0.8},
    {"max_depth": 5, "eta": 0.15, "min_child_weight": 5, "subsample": 0.8, "colsample_bytree": 0.8},
)
#: A deliberately bad model: stumps, huge steps, three rounds.
WORSE_PARAMS: Final[dict[str, Any]] = {"max_depth": 1, "eta": 1.0}
WORSE_ROUNDS: Final[int] = 3


def _matrix(frame: pd.DataFrame, with_label: bool) -> xgb.DMatrix:
    churn.validate_frame(frame, require_label=with_label)
    x = frame[churn.FEATURES].to_numpy(dtype=np.float32)
    label = frame[churn.LABEL].to_numpy() if with_label else None
    return xgb.DMatrix(x, label=label, nthread=DEFAULT_NTHREAD)


def train_xgboost(
    train: pd.DataFrame,
    params: Mapping[str, Any] | None = None,
    num_round: int = 100,
    valid: pd.DataFrame | None = None,
    early_stopping_rounds: int | None = None,
    seed: int = 0,
    nthread: int = DEFAULT_NTHREAD,
) -> xgb.Booster:
    """Train a ``binary:logistic`` Booster on churn data (early stopping needs ``valid``)."""
    if num_round < 1:
        raise ValueError(f"num_round must be >= 1, got {num_round}")
    if early_stopping_rounds is not None and valid is None:
        raise ValueError("early_stopping_rounds needs a valid frame to watch")
    full = {**_BASE_PARAMS, **(params or {}), "seed": seed, "nthread": nthread}
    evals = [(_matrix(valid, True), "valid")] if valid is not None else []
    return xgb.train(
        full,
        _matrix(train, True),
        num_boost_round=num_round,
        evals=evals,
        early_stopping_rounds=early_stopping_rounds,
        verbose_eval=False,
    )


@dataclass(frozen=True)
class Candidate:
    """One point of the hyperparameter search, with how it did on the validation split."""

    params: dict[str, Any]
    rounds: int
    valid_auc: float | None
    valid_accuracy: float


@dataclass(frozen=True)
class SearchResult:
    """The best Booster of a search and every candidate tried (kept for the decision record)."""

    booster: xgb.Booster
    best: Candidate
    candidates: list[Candidate]


def train_challenger(
    train: pd.DataFrame,
    valid: pd.DataFrame,
    grid: Sequence[Mapping[str, Any]] | None = None,
    seed: int = 0,
    max_rounds: int = 200,
    early_stopping_rounds: int = 15,
) -> SearchResult:
    """Small hyperparameter search for the nightly challenger: early stopping on validation
    logloss, then the candidate with the best validation ROC AUC wins (ties: first in grid)."""
    grid = DEFAULT_GRID if grid is None else grid
    if not grid:
        raise ValueError("grid must contain at least one parameter set")
    best: tuple[xgb.Booster, Candidate] | None = None
    candidates: list[Candidate] = []
    for params in grid:
        booster = train_xgboost(train, params, max_rounds, valid, early_stopping_rounds, seed=seed)
        rounds = booster.best_iteration + 1
        booster = booster[:rounds]
        m = classification_metrics(valid[churn.LABEL], booster.predict(_matrix(valid, False)))
        cand = Candidate(dict(params), rounds, m.roc_auc, m.accuracy)
        candidates.append(cand)
        if best is None or (cand.valid_auc or 0.0) > (best[1].valid_auc or 0.0):
            best = (booster, cand)
    assert best is not None
    return SearchResult(booster=best[0], best=best[1], candidates=candidates)


def train_sklearn(train: pd.DataFrame, seed: int = 0) -> ClassifierMixin:
    """A scikit-learn gradient-boosting churn model (for the SageMaker scikit-learn layout)."""
    churn.validate_frame(train, require_label=True)
    model = HistGradientBoostingClassifier(
        max_iter=60, learning_rate=0.15, max_depth=5, random_state=seed
    )
    with threadpool_limits(limits=DEFAULT_NTHREAD):  # OpenMP contention: see module docstring
        return model.fit(train[churn.FEATURES].to_numpy(dtype=float), train[churn.LABEL].to_numpy())


def xgboost_model_bytes(booster: xgb.Booster) -> bytes:
    """The Booster as portable JSON (scalar ``base_score``; see the module docstring)."""
    doc = json.loads(bytes(booster.save_raw(raw_format="json")))
    mparam = doc["learner"]["learner_model_param"]
    base = str(mparam.get("base_score", ""))
    if base.startswith("[") and base.endswith("]") and "," not in base:
        mparam["base_score"] = base[1:-1]
    return json.dumps(doc, separators=(",", ":")).encode()


def _tar_bytes(member: str, payload: bytes) -> bytes:
    """A ``model.tar.gz`` holding one member."""
    info = tarfile.TarInfo(member)
    info.size = len(payload)
    info.mode = 0o644
    info.mtime = 0  # reproducible archives: same model, same bytes
    buffer = io.BytesIO()
    with tarfile.open("model.tar.gz", "w:gz", fileobj=buffer, compresslevel=6) as tar:
        tar.addfile(info, io.BytesIO(payload))
    return buffer.getvalue()


def _write_tar(out_path: Path | str, archive: bytes) -> Path:
    out_path = Path(out_path)
    if not out_path.name.endswith(".tar.gz"):
        raise ValueError(f"out_path must end with .tar.gz, got {out_path.name}")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_bytes(archive)
    return out_path


def xgboost_tarball(booster: xgb.Booster) -> bytes:
    """SageMaker's built-in XGBoost artifact as bytes: ``model.tar.gz`` with ``xgboost-model``.

    The one place that builds it: :func:`package_xgboost` writes these bytes to a file, tests and
    benchmarks upload them to S3 as they are."""
    return _tar_bytes(XGB_MODEL_FILE, xgboost_model_bytes(booster))


def sklearn_tarball(model: ClassifierMixin) -> bytes:
    """SageMaker's scikit-learn artifact as bytes: ``model.tar.gz`` with ``model.joblib``."""
    if not hasattr(model, "predict_proba"):
        raise TypeError(f"model must have predict_proba, got {type(model).__name__}")
    buffer = io.BytesIO()
    joblib.dump(model, buffer)
    return _tar_bytes(SKLEARN_MODEL_FILE, buffer.getvalue())


def package_xgboost(booster: xgb.Booster, out_path: Path | str) -> Path:
    """Write SageMaker's built-in XGBoost artifact (:func:`xgboost_tarball`) to ``out_path``."""
    return _write_tar(out_path, xgboost_tarball(booster))


def package_sklearn(model: ClassifierMixin, out_path: Path | str) -> Path:
    """Write SageMaker's scikit-learn artifact (:func:`sklearn_tarball`) to ``out_path``."""
    return _write_tar(out_path, sklearn_tarball(model))


@dataclass(frozen=True)
class ChurnScorer:
    """A model read back from an artifact; ``predict`` returns churn probabilities."""

    kind: Framework
    model: Any

    def predict(self, features: pd.DataFrame | np.ndarray) -> np.ndarray:
        """Score rows given as a frame with ``FEATURES`` columns or an array in that order."""
        x = _feature_array(features)
        if self.kind is Framework.XGBOOST:
            return self.model.predict(xgb.DMatrix(x.astype(np.float32), nthread=DEFAULT_NTHREAD))
        with threadpool_limits(limits=DEFAULT_NTHREAD):
            return self.model.predict_proba(x)[:, 1]


def _feature_array(features: pd.DataFrame | np.ndarray) -> np.ndarray:
    if isinstance(features, pd.DataFrame):
        churn.validate_frame(features)
        return features[churn.FEATURES].to_numpy(dtype=float)
    x = np.asarray(features, dtype=float)
    if x.ndim != 2 or x.shape[1] != len(churn.FEATURES):
        raise ValueError(f"features must have shape (n, {len(churn.FEATURES)}), got {x.shape}")
    return x


def load_model_artifact(path: Path | str) -> ChurnScorer:
    """Read a ``model.tar.gz`` in either SageMaker layout back into a predicting model."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model artifact not found: {path}")
    with tarfile.open(path, "r:gz") as tar:
        names = tar.getnames()
        if XGB_MODEL_FILE in names:
            booster = xgb.Booster(params={"nthread": DEFAULT_NTHREAD})
            booster.load_model(bytearray(_read_member(tar, XGB_MODEL_FILE)))
            return ChurnScorer(Framework.XGBOOST, booster)
        if SKLEARN_MODEL_FILE in names:
            return ChurnScorer(
                Framework.SKLEARN, joblib.load(io.BytesIO(_read_member(tar, SKLEARN_MODEL_FILE)))
            )
    raise ValueError(
        f"{path}: no {XGB_MODEL_FILE!r} or {SKLEARN_MODEL_FILE!r} member (found {names})"
    )


def _read_member(tar: tarfile.TarFile, name: str) -> bytes:
    fh = tar.extractfile(name)
    if fh is None:
        raise ValueError(f"tar member {name!r} is not a regular file")
    return fh.read()


def offline_metrics(
    model: ChurnScorer | xgb.Booster | ClassifierMixin, frame: pd.DataFrame
) -> ClassificationMetrics:
    """Score a labelled churn frame with any of our model forms and evaluate it."""
    churn.validate_frame(frame, require_label=True)
    if isinstance(model, xgb.Booster):
        model = ChurnScorer(Framework.XGBOOST, model)
    elif not isinstance(model, ChurnScorer):
        model = ChurnScorer(Framework.SKLEARN, model)
    return classification_metrics(frame[churn.LABEL], model.predict(frame))


@dataclass(frozen=True)
class DemoModels:
    """Artifacts of the demo: three XGBoost models, a scikit-learn one, and the test data."""

    champion: Path
    challenger: Path
    worse: Path
    sklearn_challenger: Path
    test_csv: Path  # labelled, with header (churn.read_labelled_csv)
    payload_csv: Path  # features only, no header: the replayable payload lines
    traffic_csv: Path  # today's traffic, labelled: what the demo's rollouts replay
    metrics: dict[str, ClassificationMetrics] = field(default_factory=dict)
    challenger_search: SearchResult | None = None
    train_seconds: float = 0.0

    def artifacts(self) -> dict[str, Path]:
        return {
            "champion": self.champion,
            "challenger": self.challenger,
            "worse": self.worse,
            "sklearn_challenger": self.sklearn_challenger,
        }


#: Rows of "today's" data (split 70/15/15) and of the champion's older, smaller training slice.
DEMO_ROWS: Final[int] = 12000
#: Rows of today's traffic the demo replays: fresh customers (their own seed stream), about
#: twice what a stage of the demo's plan may need (a 50/50 stage: 3 761 requests at most), so
#: no stage replays a row twice: a row sent again gets the same answers and is no new evidence.
DEMO_TRAFFIC_ROWS: Final[int] = 8000
_TRAFFIC_SEED: Final[int] = 100_000  # added to the seed: a stream no model is trained on
DEMO_CHAMPION_ROWS: Final[int] = 1500
DEMO_DAY: Final[int] = 30
_WORSE_ROWS: Final[int] = 300
_WORSE_SHUFFLED_SHARE: Final[float] = 0.5


def _worse_training_slice(train: pd.DataFrame, seed: int) -> pd.DataFrame:
    """A tiny slice with half its labels shuffled: a believable broken data pipeline."""
    rng = np.random.default_rng(seed)
    rows = train.iloc[rng.choice(len(train), size=_WORSE_ROWS, replace=False)].copy()
    hit = rng.random(len(rows)) < _WORSE_SHUFFLED_SHARE
    labels = rows[churn.LABEL].to_numpy().copy()
    labels[hit] = rng.permutation(labels[hit])
    rows[churn.LABEL] = labels
    return rows


def demo_models(out_dir: Path | str, seed: int = 0) -> DemoModels:
    """Train and package the demo's models; the challenger is genuinely a little better.

    Champion: 1 500 rows from day 0 (older data; the concept has drifted since), XGBoost defaults,
    10 rounds. Challenger: today's (day 30) training split, ``train_challenger`` search.
    Worse: 300 rows with partly shuffled labels and stumps. All are evaluated on today's test
    split, which is also written as the labelled and payload CSVs. The traffic the rollouts
    replay is ``DEMO_TRAFFIC_ROWS`` further customers of the same day.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    train, valid, test = churn.split(churn.generate(DEMO_ROWS, seed, DEMO_DAY), seed)
    old = churn.generate(DEMO_CHAMPION_ROWS, seed, day=0)
    boosters = {
        "champion": train_xgboost(old, CHAMPION_PARAMS, CHAMPION_ROUNDS, seed=seed),
        "worse": train_xgboost(_worse_training_slice(train, seed), WORSE_PARAMS, WORSE_ROUNDS),
    }
    search = train_challenger(train, valid, seed=seed)
    boosters["challenger"] = search.booster
    paths = {name: package_xgboost(b, out / name / "model.tar.gz") for name, b in boosters.items()}
    sk_model = train_sklearn(train, seed)
    paths["sklearn_challenger"] = package_sklearn(
        sk_model, out / "sklearn_challenger" / "model.tar.gz"
    )
    seconds = time.perf_counter() - started
    metrics = {name: offline_metrics(load_model_artifact(p), test) for name, p in paths.items()}
    return DemoModels(
        test_csv=churn.write_labelled_csv(test, out / "test.csv"),
        payload_csv=churn.write_payload_csv(test, out / "test_payload.csv"),
        traffic_csv=churn.write_labelled_csv(
            churn.generate(DEMO_TRAFFIC_ROWS, seed + _TRAFFIC_SEED, DEMO_DAY), out / "traffic.csv"
        ),
        metrics=metrics,
        challenger_search=search,
        train_seconds=seconds,
        **paths,
    )
