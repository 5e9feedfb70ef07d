"""The nightly challenger: train on the night's data window, compare offline with the champion.

Why offline first: a rollout costs an endpoint and hours of real traffic; a challenger that does
not beat the champion on the same holdout is not worth that, so the nightly job stops there.
Both models are scored on the *same* fresh holdout (today's data), which is what production will
look like tomorrow; the champion's artifact is read back from S3 exactly as SageMaker serves it.
"""

from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path
from typing import Any

from canary.models import churn, training
from canary.models import registry as reg
from canary.models.evaluation import ClassificationMetrics
from canary.plan import NightlySpec, OfflineMetric
from canary.rollout.artifacts import split_s3_uri

log = logging.getLogger(__name__)

EPOCH = date(2026, 1, 1)


def data_day(logical_date: date, epoch: date = EPOCH) -> int:
    """Days since the data's epoch: the night's position in the drifting churn stream."""
    return max(0, (logical_date - epoch).days)


@dataclass(frozen=True)
class NightlyResult:
    """The night's verdict, small enough for XCom and complete enough for the registry."""

    day: int
    model_data_url: str
    metric: str
    challenger: dict[str, Any]
    champion: dict[str, Any] | None
    champion_arn: str | None
    improvement: float | None
    min_improvement: float
    rounds: int
    params: dict[str, Any]
    evaluation_url: str | None = None

    @property
    def first_champion(self) -> bool:
        """No champion in the registry yet: this challenger becomes the first one."""
        return self.champion_arn is None

    @property
    def better(self) -> bool:
        """Worth registering: strictly better offline, or the first model of the group."""
        return self.first_champion or (self.improvement or 0.0) > 0.0

    @property
    def approve(self) -> bool:
        """Approved automatically: first champion, or better by at least the configured bar."""
        return self.first_champion or (self.improvement or 0.0) >= self.min_improvement

    def to_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "first_champion": self.first_champion,
            "better": self.better,
            "approve": self.approve,
        }


def run_night(s3: Any, sm: Any, spec: NightlySpec, day: int) -> NightlyResult:
    """Train the night's challenger, score it and the champion on the holdout, upload it."""
    train, valid, test = churn.split(churn.generate(spec.n_rows, spec.seed, day=day), spec.seed)
    search = training.train_challenger(train, valid, seed=spec.seed)
    challenger = training.offline_metrics(search.booster, test)
    champion_arn = reg.find_champion(sm, spec.group)
    champion = _champion_metrics(s3, sm, champion_arn, test) if champion_arn else None
    url = _upload(s3, spec, day, search.booster)
    improvement = _improvement(spec.metric, challenger, champion)
    evaluation = {"day": day, "challenger": challenger.to_dict(), "search": search.best.params}
    evaluation["champion"] = {"arn": champion_arn, **(champion.to_dict() if champion else {})}
    evaluation_url = _put_json(s3, url.rsplit("/", 1)[0] + "/evaluation.json", evaluation)
    log.info(
        "day %d: challenger %s=%.4f, champion %s, improvement %s",
        day,
        spec.metric,
        _value(challenger, spec.metric),
        f"{_value(champion, spec.metric):.4f}" if champion else "none",
        improvement,
    )
    return NightlyResult(
        day=day,
        model_data_url=url,
        metric=spec.metric.value,
        challenger=challenger.to_dict(),
        champion=champion.to_dict() if champion else None,
        champion_arn=champion_arn,
        improvement=improvement,
        min_improvement=spec.min_improvement,
        rounds=search.best.rounds,
        params=search.best.params,
        evaluation_url=evaluation_url,
    )


def _put_json(s3: Any, url: str, document: dict[str, Any]) -> str:
    """The offline evaluation as JSON next to the model: what the registry's ModelMetrics cite."""
    bucket, key = split_s3_uri(url)
    body = json.dumps(document, indent=1, default=str).encode()
    s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json")
    return url


def model_metrics(result: NightlyResult) -> dict[str, Any] | None:
    """The registry's ModelMetrics: the offline evaluation report in S3, as SageMaker wants it."""
    if not result.evaluation_url:
        return None
    report = {"ContentType": "application/json", "S3Uri": result.evaluation_url}
    return {"ModelQuality": {"Statistics": report}}


def _champion_metrics(s3: Any, sm: Any, arn: str, test: Any) -> ClassificationMetrics:
    """Read the champion's served artifact back from S3 and score it on tonight's holdout."""
    from canary.rollout.artifacts import resolve_model_package

    _, url = resolve_model_package(sm, arn)
    bucket, key = split_s3_uri(url)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.tar.gz"
        s3.download_file(bucket, key, str(path))
        return training.offline_metrics(training.load_model_artifact(path), test)


def _upload(s3: Any, spec: NightlySpec, day: int, booster: Any) -> str:
    """Package SageMaker's XGBoost layout and put it where the registry will point."""
    from canary.rollout.artifacts import ensure_bucket

    key = f"{spec.prefix.strip('/')}/{spec.group}/day-{day:05d}-seed-{spec.seed}/model.tar.gz"
    with tempfile.TemporaryDirectory() as folder:
        path = training.package_xgboost(booster, Path(folder) / "model.tar.gz")
        ensure_bucket(s3, spec.bucket, s3.meta.region_name or "us-east-1")
        s3.upload_file(str(path), spec.bucket, key)
    return f"s3://{spec.bucket}/{key}"


def _value(metrics: ClassificationMetrics | None, metric: str) -> float:
    value = getattr(metrics, metric) if metrics else None
    return float("nan") if value is None else float(value)


def _improvement(
    metric: str, challenger: ClassificationMetrics, champion: ClassificationMetrics | None
) -> float | None:
    if champion is None:
        return None
    new, old = getattr(challenger, metric), getattr(champion, metric)
    if new is None or old is None:
        return None  # an undefined AUC proves nothing either way: not better
    return round(float(new) - float(old), 6)


def package_properties(result: NightlyResult) -> dict[str, str]:
    """CustomerMetadataProperties of the registered version: its offline evidence, its night."""
    metrics = {metric.value: result.challenger.get(metric.value) for metric in OfflineMetric}
    props = reg.offline_properties(metrics)
    props["canary:day"] = str(result.day)
    props["canary:compared-with"] = result.champion_arn or "none"
    if result.improvement is not None:
        props[f"canary:offline:{result.metric}-improvement"] = f"{result.improvement:.6f}"
    if result.first_champion:
        props[reg.ROLE_KEY] = reg.CHAMPION
        props[reg.ROLLOUT_KEY] = reg.BOOTSTRAP_RUN
    return props


def package_description(result: NightlyResult) -> str:
    if result.first_champion:
        return f"nightly day {result.day}: first model of the group, champion without a rollout"
    return (
        f"nightly day {result.day}: {result.metric} {result.challenger[result.metric]:.4f} vs "
        f"champion {result.champion[result.metric] if result.champion else float('nan'):.4f} "
        f"(improvement {result.improvement}, bar {result.min_improvement})"
    )
