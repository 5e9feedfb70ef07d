"""Synthetic telecom-churn data, shaped like the public telecom churn data set SageMaker's
examples use (area code, day/eve/night minutes and calls, service calls, plans).

Why synthetic: the product must run without network access or licensed data, yet the rollout has
to be exercised with models whose quality really differs. The generator therefore has a
non-linear ground truth (interactions and threshold effects), label noise so no model is perfect,
and a ``day`` knob that drifts both the feature distribution and the concept a little per day, so a
challenger trained on recent data is genuinely better than a champion trained on old data.

Everything is deterministic in ``(seed, day)``.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Final

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

#: Feature columns in the order used by CSV inference payloads (label not included).
FEATURES: Final[list[str]] = [
    "account_length",
    "area_code",
    "intl_plan",
    "vmail_plan",
    "vmail_message",
    "day_mins",
    "day_calls",
    "day_charge",
    "eve_mins",
    "eve_calls",
    "eve_charge",
    "night_mins",
    "night_calls",
    "night_charge",
    "intl_mins",
    "intl_calls",
    "intl_charge",
    "custserv_calls",
]
#: Binary label column: 1 = the customer churned.
LABEL: Final[str] = "churn"

AREA_CODES: Final[tuple[int, ...]] = (408, 415, 510)
# Per-minute tariffs of the original data set: charges are exact functions of minutes.
_TARIFF = {"day": 0.17, "eve": 0.085, "night": 0.045, "intl": 0.27}
# Share of labels flipped at random: irreducible noise so that no model reaches 100 %.
_LABEL_FLIP_RATE = 0.02
# Intercept calibrated so that roughly 14 % of customers churn at day 0.
_INTERCEPT = -5.4
# Days over which the drift terms grow by one unit: slow enough to be "a little per day".
_DRIFT_PERIOD_DAYS = 30.0


def _check_int(name: str, value: object, minimum: int) -> int:
    """Reject non-integers (including bools) and values below ``minimum``, naming the field."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}: {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def _rng(seed: int, day: int) -> np.random.Generator:
    """One independent stream per (seed, day) so each day's data is reproducible on its own."""
    return np.random.default_rng(np.random.SeedSequence([seed, day]))


def _minutes(rng: np.random.Generator, n: int, mean: float, sd: float, hi: float) -> np.ndarray:
    return np.round(np.clip(rng.normal(mean, sd, n), 0.0, hi), 1)


def _calls(rng: np.random.Generator, n: int, mean: float, sd: float) -> np.ndarray:
    return np.clip(np.round(rng.normal(mean, sd, n)), 0, None).astype(np.int64)


def _features(rng: np.random.Generator, n: int, drift: float) -> pd.DataFrame:
    """Draw features with marginals close to the public data set's; ``drift`` shifts usage up."""
    vmail_plan = (rng.random(n) < 0.277).astype(np.int64)
    vmail_msgs = np.where(vmail_plan == 1, np.clip(np.round(rng.normal(29, 7.5, n)), 4, 51), 0)
    cols: dict[str, np.ndarray] = {
        "account_length": np.clip(np.round(rng.normal(101, 40, n)), 1, 243).astype(np.int64),
        "area_code": rng.choice(np.array(AREA_CODES), size=n, p=[0.25, 0.5, 0.25]),
        "intl_plan": (rng.random(n) < 0.097 + 0.01 * drift).astype(np.int64),
        "vmail_plan": vmail_plan,
        "vmail_message": vmail_msgs.astype(np.int64),
    }
    usage = {
        "day": (179.8 + 3.0 * drift, 54.5, 351.0),
        "eve": (201.0, 50.7, 364.0),
        "night": (200.9, 50.6, 395.0),
    }
    for period, (mean, sd, hi) in usage.items():
        cols[f"{period}_mins"] = _minutes(rng, n, mean, sd, hi)
        cols[f"{period}_calls"] = _calls(rng, n, 100.0, 20.0)
        cols[f"{period}_charge"] = np.round(cols[f"{period}_mins"] * _TARIFF[period], 2)
    cols["intl_mins"] = _minutes(rng, n, 10.2, 2.8, 20.0)
    cols["intl_calls"] = rng.poisson(4.5, n).astype(np.int64)
    cols["intl_charge"] = np.round(cols["intl_mins"] * _TARIFF["intl"], 2)
    cols["custserv_calls"] = rng.poisson(1.56 + 0.05 * drift, n).astype(np.int64)
    return pd.DataFrame({name: cols[name] for name in FEATURES})


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def churn_logit(features: pd.DataFrame, day: int = 0) -> np.ndarray:
    """Ground-truth log-odds of churn.

    The terms mirror what analyses of the real data find: heavy daytime users without a voice-mail
    plan leave (and, as ``day`` grows, competitors lure them at lower usage: concept drift);
    four or more customer-service calls sharply raise churn, mostly for light users; an
    international plan is a churn risk when the customer talks a lot abroad or rarely calls.
    """
    f = features
    drift = day / _DRIFT_PERIOD_DAYS
    total_charge = f["day_charge"] + f["eve_charge"] + f["night_charge"] + f["intl_charge"]
    heavy_day = _sigmoid((f["day_mins"] - (255.0 - 12.0 * drift)) / 7.0).to_numpy()
    light_day = 1.0 - _sigmoid((f["day_mins"] - 215.0) / 12.0).to_numpy()
    many_calls = (f["custserv_calls"] >= 4).to_numpy(dtype=float)
    intl = f["intl_plan"].to_numpy(dtype=float)
    logit = (
        _INTERCEPT
        + 8.0 * heavy_day * (1.0 - 0.7 * f["vmail_plan"].to_numpy())
        + 6.0 * many_calls * light_day
        + 0.35 * f["custserv_calls"].clip(upper=3).to_numpy()
        + intl * (0.5 + 5.0 * (f["intl_mins"] > 13.0) + 4.5 * (f["intl_calls"] < 3)).to_numpy()
        + 0.03 * (total_charge - 60.0).to_numpy()
        + 1.2 * _sigmoid((f["eve_mins"] - 290.0) / 10.0).to_numpy()
    )
    return np.asarray(logit, dtype=float)


def generate(n_rows: int, seed: int = 0, day: int = 0) -> pd.DataFrame:
    """Generate ``n_rows`` customers: the ``FEATURES`` columns plus the 0/1 ``LABEL`` column.

    ``day`` (>= 0) moves the data a little per day: more daytime usage, more service calls,
    more international plans, and a lower usage threshold at which heavy users churn.
    """
    n_rows = _check_int("n_rows", n_rows, 1)
    seed = _check_int("seed", seed, 0)
    day = _check_int("day", day, 0)
    rng = _rng(seed, day)
    frame = _features(rng, n_rows, day / _DRIFT_PERIOD_DAYS)
    label = (rng.random(n_rows) < _sigmoid(churn_logit(frame, day))).astype(np.int64)
    flip = rng.random(n_rows) < _LABEL_FLIP_RATE
    frame[LABEL] = np.where(flip, 1 - label, label)
    return frame


def split(
    df: pd.DataFrame,
    seed: int = 0,
    validation_fraction: float = 0.15,
    test_fraction: float = 0.15,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Stratified train / validation / test split (stratified so each part keeps the churn rate)."""
    validate_frame(df, require_label=True)
    seed = _check_int("seed", seed, 0)
    for name, value in (
        ("validation_fraction", validation_fraction),
        ("test_fraction", test_fraction),
    ):
        if not 0.0 < value < 1.0:
            raise ValueError(f"{name} must be in (0, 1), got {value}")
    if validation_fraction + test_fraction >= 1.0:
        raise ValueError("validation_fraction + test_fraction must leave rows for training")
    held_out = validation_fraction + test_fraction
    if len(df) * min(validation_fraction, test_fraction) < 2:
        raise ValueError(f"df has only {len(df)} rows: too few to split into three parts")
    train, rest = train_test_split(
        df, test_size=held_out, random_state=seed, stratify=_stratify(df)
    )
    valid, test = train_test_split(
        rest, test_size=test_fraction / held_out, random_state=seed, stratify=_stratify(rest)
    )
    return train.reset_index(drop=True), valid.reset_index(drop=True), test.reset_index(drop=True)


def _stratify(df: pd.DataFrame) -> pd.Series | None:
    """Stratify on the label only when every class has enough rows for sklearn to do so."""
    counts = df[LABEL].value_counts()
    return df[LABEL] if len(counts) == 2 and counts.min() >= 2 else None


def validate_frame(df: pd.DataFrame, require_label: bool = False) -> None:
    """Fail early, naming the missing columns, when a frame is not churn data."""
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"expected a pandas DataFrame, got {type(df).__name__}")
    needed = [*FEATURES, LABEL] if require_label else FEATURES
    missing = [c for c in needed if c not in df.columns]
    if missing:
        raise ValueError(f"churn frame is missing columns: {', '.join(missing)}")
    if len(df) == 0:
        raise ValueError("churn frame has no rows")
    if require_label and not df[LABEL].isin([0, 1]).all():
        raise ValueError(f"column {LABEL!r} must contain only 0 and 1")


def write_payload_csv(df: pd.DataFrame, path: Path | str) -> Path:
    """Write features only, no header: what a hand-written invoke loop reads line by line."""
    validate_frame(df)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    df[FEATURES].to_csv(path, header=False, index=False, lineterminator="\n")
    return path


def write_labelled_csv(df: pd.DataFrame, path: Path | str) -> Path:
    """Write features plus label *with* a header, so readers never guess the column order."""
    validate_frame(df, require_label=True)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    df[[*FEATURES, LABEL]].to_csv(path, index=False, lineterminator="\n")
    return path


def read_labelled_csv(path: Path | str) -> pd.DataFrame:
    """Read a file written by :func:`write_labelled_csv`, checking its header."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"labelled CSV not found: {path}")
    with path.open(newline="") as fh:
        header = next(csv.reader(fh), [])
    if header != [*FEATURES, LABEL]:
        raise ValueError(f"{path}: header does not match churn FEATURES + {LABEL!r}: {header}")
    df = pd.read_csv(path)
    validate_frame(df, require_label=True)
    return df
