"""Training and packaging: real models, real SageMaker layouts, a genuinely better challenger."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
from statsmodels.stats.contingency_tables import mcnemar

from canary.models import churn, training
from canary.plan import Framework


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> training.DemoModels:
    return training.demo_models(tmp_path_factory.mktemp("demo"), seed=0)


@pytest.fixture(scope="module")
def test_frame(demo: training.DemoModels):
    return churn.read_labelled_csv(demo.test_csv)


def _correct(model_path: Path, frame) -> np.ndarray:
    scores = training.load_model_artifact(model_path).predict(frame)
    return (scores >= 0.5).astype(int) == frame[churn.LABEL].to_numpy()


def test_challenger_beats_champion_on_auc_and_accuracy(demo: training.DemoModels) -> None:
    champ, chal = demo.metrics["champion"], demo.metrics["challenger"]
    assert chal.roc_auc > champ.roc_auc
    assert 0.01 <= chal.accuracy - champ.accuracy <= 0.04


def test_accuracy_gap_is_statistically_real(demo: training.DemoModels, test_frame) -> None:
    champ = _correct(demo.champion, test_frame)
    chal = _correct(demo.challenger, test_frame)
    table = [[np.sum(champ & chal), np.sum(champ & ~chal)], [np.sum(~champ & chal), 0]]
    assert mcnemar(table, exact=False, correction=True).pvalue < 0.05


def test_worse_model_is_clearly_worse(demo: training.DemoModels) -> None:
    champ, worse = demo.metrics["champion"], demo.metrics["worse"]
    assert worse.accuracy <= champ.accuracy - 0.03
    assert worse.roc_auc < champ.roc_auc


def test_metrics_are_computed_on_the_written_test_split(demo, test_frame) -> None:
    assert demo.metrics["challenger"].n == len(test_frame)
    recomputed = training.offline_metrics(training.load_model_artifact(demo.challenger), test_frame)
    assert recomputed == demo.metrics["challenger"]
    assert len(demo.payload_csv.read_text().splitlines()) == len(test_frame)


def test_the_replayed_traffic_is_fresh_customers_where_the_challenger_is_better(demo) -> None:
    """The rollouts replay customers no model was fitted or tested on, of the same day."""
    traffic = churn.read_labelled_csv(demo.traffic_csv)
    assert len(traffic) == training.DEMO_TRAFFIC_ROWS
    edge = _correct(demo.challenger, traffic).mean() - _correct(demo.champion, traffic).mean()
    assert 0.01 <= edge <= 0.04


def test_xgboost_artifact_has_sagemaker_layout(demo: training.DemoModels) -> None:
    with tarfile.open(demo.challenger, "r:gz") as tar:
        assert tar.getnames() == ["xgboost-model"]
        raw = tar.extractfile("xgboost-model").read()
    doc = json.loads(raw)
    base_score = doc["learner"]["learner_model_param"]["base_score"]
    assert not base_score.startswith("[")
    assert 0.0 < float(base_score) < 1.0


def test_sklearn_artifact_has_sagemaker_layout(demo: training.DemoModels) -> None:
    with tarfile.open(demo.sklearn_challenger, "r:gz") as tar:
        assert tar.getnames() == ["model.joblib"]
    assert training.load_model_artifact(demo.sklearn_challenger).kind is Framework.SKLEARN
    assert demo.metrics["sklearn_challenger"].roc_auc > demo.metrics["champion"].roc_auc


def test_packaged_booster_predicts_exactly_like_the_trained_one(tmp_path: Path) -> None:
    frame = churn.generate(600, seed=4, day=3)
    booster = training.train_xgboost(frame, {"max_depth": 3}, num_round=20, seed=4)
    path = training.package_xgboost(booster, tmp_path / "model.tar.gz")
    loaded = training.load_model_artifact(path)
    in_memory = training.ChurnScorer(Framework.XGBOOST, booster).predict(frame)
    np.testing.assert_array_equal(loaded.predict(frame), in_memory)
    np.testing.assert_array_equal(loaded.predict(frame[churn.FEATURES].to_numpy()), in_memory)


def test_packaged_sklearn_model_predicts_exactly_like_the_trained_one(tmp_path: Path) -> None:
    frame = churn.generate(600, seed=4)
    model = training.train_sklearn(frame, seed=4)
    loaded = training.load_model_artifact(
        training.package_sklearn(model, tmp_path / "model.tar.gz")
    )
    np.testing.assert_array_equal(
        loaded.predict(frame), model.predict_proba(frame[churn.FEATURES].to_numpy(float))[:, 1]
    )


def test_search_reports_every_candidate_and_keeps_the_best(demo: training.DemoModels) -> None:
    search = demo.challenger_search
    assert len(search.candidates) == len(training.DEFAULT_GRID)
    assert search.best.valid_auc == max(c.valid_auc for c in search.candidates)
    assert search.booster.num_boosted_rounds() == search.best.rounds


def test_search_with_empty_grid_is_rejected() -> None:
    frame = churn.generate(300, seed=1)
    with pytest.raises(ValueError, match="grid"):
        training.train_challenger(frame, frame, grid=[])


def test_loading_a_foreign_archive_names_what_is_missing(tmp_path: Path) -> None:
    other = tmp_path / "other.txt"
    other.write_text("not a model")
    archive = tmp_path / "model.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(other, arcname="other.txt")
    with pytest.raises(ValueError, match="xgboost-model"):
        training.load_model_artifact(archive)
    with pytest.raises(FileNotFoundError, match="missing"):
        training.load_model_artifact(tmp_path / "missing.tar.gz")


def test_predict_rejects_wrongly_shaped_features(demo: training.DemoModels) -> None:
    with pytest.raises(ValueError, match="shape"):
        training.load_model_artifact(demo.champion).predict(np.zeros((2, 3)))
