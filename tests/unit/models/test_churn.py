"""The synthetic churn data: deterministic, realistic in shape, and drifting a little per day."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from canary.models import churn


def test_features_are_ordered_and_exclude_label() -> None:
    df = churn.generate(50, seed=1)
    assert list(df.columns) == [*churn.FEATURES, churn.LABEL]
    assert churn.LABEL not in churn.FEATURES
    assert len(churn.FEATURES) == 18


def test_same_seed_and_day_give_identical_data() -> None:
    pd.testing.assert_frame_equal(
        churn.generate(400, seed=3, day=2), churn.generate(400, seed=3, day=2)
    )


@pytest.mark.parametrize(("seed", "day"), [(4, 2), (3, 3)])
def test_other_seed_or_day_give_other_data(seed: int, day: int) -> None:
    assert not churn.generate(400, seed=3, day=2).equals(churn.generate(400, seed=seed, day=day))


def test_label_is_binary_with_about_fourteen_percent_churn() -> None:
    df = churn.generate(20000, seed=0, day=0)
    assert set(df[churn.LABEL].unique()) == {0, 1}
    assert 0.12 <= df[churn.LABEL].mean() <= 0.17


def test_charges_follow_the_tariff_and_values_are_plausible() -> None:
    df = churn.generate(2000, seed=5)
    np.testing.assert_allclose(df["day_charge"], (df["day_mins"] * 0.17).round(2), atol=0.011)
    np.testing.assert_allclose(df["intl_charge"], (df["intl_mins"] * 0.27).round(2), atol=0.011)
    assert set(df["area_code"].unique()) <= set(churn.AREA_CODES)
    assert (df.loc[df["vmail_plan"] == 0, "vmail_message"] == 0).all()
    assert (df[churn.FEATURES] >= 0).all().all()


def test_ground_truth_has_the_documented_threshold_effect() -> None:
    df = churn.generate(20000, seed=2)
    rate = df.groupby(df["custserv_calls"] >= 4)[churn.LABEL].mean()
    assert rate[True] > 2 * rate[False]


def test_distribution_drifts_over_days_but_only_a_little_per_day() -> None:
    day0 = churn.generate(20000, seed=0, day=0)
    day1 = churn.generate(20000, seed=0, day=1)
    day60 = churn.generate(20000, seed=0, day=60)
    assert stats.ks_2samp(day0["day_mins"], day60["day_mins"]).pvalue < 1e-3
    assert day60[churn.LABEL].mean() > day0[churn.LABEL].mean()
    assert abs(day1["day_mins"].mean() - day0["day_mins"].mean()) < 3.0


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"n_rows": 0}, "n_rows"),
        ({"n_rows": 2.5}, "n_rows"),
        ({"n_rows": 10, "seed": -1}, "seed"),
        ({"n_rows": 10, "day": True}, "day"),
    ],
)
def test_bad_arguments_name_the_field(kwargs: dict, field: str) -> None:
    with pytest.raises((ValueError, TypeError), match=field):
        churn.generate(**kwargs)


def test_split_is_stratified_disjoint_and_deterministic() -> None:
    df = churn.generate(4000, seed=8)
    train, valid, test = churn.split(df, seed=1)
    assert (len(train), len(valid), len(test)) == (2800, 600, 600)
    rate = df[churn.LABEL].mean()
    for part in (train, valid, test):
        assert abs(part[churn.LABEL].mean() - rate) < 0.01
    keys = [set(map(tuple, p[churn.FEATURES].to_numpy())) for p in (train, valid, test)]
    assert not (keys[0] & keys[1]) and not (keys[0] & keys[2]) and not (keys[1] & keys[2])
    pd.testing.assert_frame_equal(test, churn.split(df, seed=1)[2])


def test_split_rejects_a_frame_without_label() -> None:
    df = churn.generate(100, seed=8).drop(columns=[churn.LABEL])
    with pytest.raises(ValueError, match="churn"):
        churn.split(df)


def test_payload_csv_has_features_only_and_no_header(tmp_path) -> None:
    df = churn.generate(30, seed=9)
    path = churn.write_payload_csv(df, tmp_path / "p.csv")
    lines = path.read_text().splitlines()
    assert len(lines) == 30
    back = pd.read_csv(path, header=None, names=churn.FEATURES)
    pd.testing.assert_frame_equal(back, df[churn.FEATURES], check_dtype=False)


def test_labelled_csv_round_trips_and_checks_its_header(tmp_path) -> None:
    df = churn.generate(30, seed=9)
    path = churn.write_labelled_csv(df, tmp_path / "t.csv")
    pd.testing.assert_frame_equal(churn.read_labelled_csv(path), df, check_dtype=False)
    churn.write_payload_csv(df, tmp_path / "p.csv")
    with pytest.raises(ValueError, match="header"):
        churn.read_labelled_csv(tmp_path / "p.csv")
