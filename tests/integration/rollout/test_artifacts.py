"""Staging both artifacts is all or nothing: a missing challenger leaves no champion copy."""

from __future__ import annotations

from pathlib import Path

import pytest

from canary.plan import parse_plan
from canary.rollout.artifacts import ArtifactError, ensure_bucket, stage_all


def test_a_missing_challenger_takes_the_champions_fresh_upload_with_it(
    local_stack, tmp_path: Path, unique_name: str
) -> None:
    champion = tmp_path / "model.tar.gz"
    champion.write_bytes(b"a champion's artifact " + unique_name.encode())
    plan = parse_plan(
        {
            "bucket": f"canary-art-{unique_name}",
            "endpoint_name": f"art-{unique_name}",
            "champion_source": str(champion),
            "challenger_source": f"s3://canary-art-{unique_name}/missing/model.tar.gz",
        }
    )
    s3, sm = local_stack.client("s3"), local_stack.client("sagemaker")
    ensure_bucket(s3, plan.bucket, plan.region)

    with pytest.raises(ArtifactError, match=r"challenger_source: .* does not exist"):
        stage_all(s3, sm, plan, [plan.champion, plan.challenger])

    assert s3.list_objects_v2(Bucket=plan.bucket).get("KeyCount", 0) == 0
    staged = stage_all(s3, sm, plan, [plan.champion])  # and a good side still stages
    assert [artifact.uploaded for artifact in staged] == [True]
