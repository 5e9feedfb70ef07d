"""The local stack's timing profiles, from the environment and the command line."""

from __future__ import annotations

import pytest

from local_sagemaker.__main__ import parse_args
from local_sagemaker.profile import AWS_VALUES, Profile, ProfileError, aws_env, profile_from_env


def test_instant_is_the_default_and_changes_nothing_in_time() -> None:
    profile = profile_from_env({})
    assert profile == Profile()
    assert not profile.asynchronous
    assert (profile.update_seconds, profile.metrics_lag, profile.throttle_rate) == (0, 0, 0)


def test_aws_scales_every_duration_but_not_the_throttle_rate() -> None:
    profile = profile_from_env({"LOCAL_SAGEMAKER_PROFILE": "aws"})
    assert profile.asynchronous
    assert profile.update_seconds == pytest.approx(AWS_VALUES.update_seconds * 0.1)
    assert profile.metrics_period == pytest.approx(6.0)
    assert profile.throttle_rate == AWS_VALUES.throttle_rate


def test_a_knob_gives_the_aws_side_value_and_the_scale_applies() -> None:
    env = {
        "LOCAL_SAGEMAKER_PROFILE": "AWS",
        "LOCAL_SAGEMAKER_TIME_SCALE": "0.5",
        "LOCAL_SAGEMAKER_WEIGHTS_SECONDS": "10",
    }
    assert profile_from_env(env).weights_seconds == pytest.approx(5.0)


def test_aws_env_names_the_variables_for_a_scale_and_knobs() -> None:
    env = aws_env(0.5, weights_seconds=10, metrics_lag=4)
    assert env == {
        "LOCAL_SAGEMAKER_PROFILE": "aws",
        "LOCAL_SAGEMAKER_TIME_SCALE": "0.5",
        "LOCAL_SAGEMAKER_WEIGHTS_SECONDS": "10",
        "LOCAL_SAGEMAKER_METRICS_LAG": "4",
    }
    profile = profile_from_env(env)
    assert (profile.weights_seconds, profile.metrics_lag) == (5.0, 2.0)
    with pytest.raises(ProfileError, match="weight_seconds"):
        aws_env(0.5, weight_seconds=10)


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"LOCAL_SAGEMAKER_PROFILE": "slow"}, "LOCAL_SAGEMAKER_PROFILE"),
        ({"LOCAL_SAGEMAKER_PROFILE": "aws", "LOCAL_SAGEMAKER_TIME_SCALE": "0"}, "TIME_SCALE"),
        ({"LOCAL_SAGEMAKER_PROFILE": "aws", "LOCAL_SAGEMAKER_METRICS_LAG": "-1"}, "METRICS_LAG"),
        ({"LOCAL_SAGEMAKER_PROFILE": "aws", "LOCAL_SAGEMAKER_METRICS_PERIOD": "0"}, "PERIOD"),
        ({"LOCAL_SAGEMAKER_PROFILE": "aws", "LOCAL_SAGEMAKER_CREATE_SECONDS": "x"}, "CREATE"),
    ],
)
def test_a_bad_value_names_its_variable(env: dict[str, str], named: str) -> None:
    with pytest.raises(ProfileError, match=named):
        profile_from_env(env)


def test_the_command_line_chooses_the_profile(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LOCAL_SAGEMAKER_PROFILE", raising=False)
    assert parse_args(["--profile", "aws"]).profile.name == "aws"
    assert parse_args([]).profile.name == "instant"
    monkeypatch.setenv("LOCAL_SAGEMAKER_PROFILE", "aws")
    assert parse_args([]).profile.name == "aws"
    assert parse_args(["--profile", "instant"]).profile.name == "instant"


def test_floor_to_period_is_the_period_start() -> None:
    profile = profile_from_env({"LOCAL_SAGEMAKER_PROFILE": "aws"})
    assert profile.floor_to_period(13.0) == pytest.approx(12.0)
