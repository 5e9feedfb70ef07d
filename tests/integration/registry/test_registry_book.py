"""The registry as the book of record (``canary.models.registry``) on the local SageMaker."""

from __future__ import annotations

import pytest

from canary.models import registry as reg


def test_property_updates_keep_status_description_and_other_properties(
    local_stack, seed_group
) -> None:
    group = seed_group(champion="champion")
    arn = group.packages["champion"]
    sm = local_stack.client("sagemaker")
    reg.update(sm, arn, description="kept", set_properties={"a": "1"})

    reg.update(sm, arn, set_properties={"b": "2"}, remove=["a"])

    package = sm.describe_model_package(ModelPackageName=arn)
    assert package["ModelApprovalStatus"] == reg.APPROVED
    assert package["ApprovalDescription"] == "kept"
    assert package["CustomerMetadataProperties"] == {reg.ROLE_KEY: reg.CHAMPION, "b": "2"}


def test_promotion_crowns_first_then_demotes(local_stack, seed_group) -> None:
    group = seed_group(champion="champion", challenger="challenger")
    sm = local_stack.client("sagemaker")

    demoted = reg.mark_champion(sm, group.name, group.packages["challenger"])

    assert demoted == [group.packages["champion"]]
    assert reg.find_champion(sm, group.name) == group.packages["challenger"]
    old = reg.properties(reg.describe(sm, group.packages["champion"]))
    assert old[reg.ROLE_KEY] == reg.FORMER_CHAMPION


def test_claim_is_refused_for_another_group_or_a_pending_version(
    local_stack, seed_group, unique_name
) -> None:
    group = seed_group(champion="champion", challenger="challenger")
    sm = local_stack.client("sagemaker")
    challenger = group.packages["challenger"]

    other = reg.claim_rollout(sm, f"other-{unique_name}", challenger, "run")
    assert not other.granted and "belongs to" in other.reason
    reg.update(sm, challenger, status=reg.PENDING)
    pending = reg.claim_rollout(sm, group.name, challenger, "run")
    assert not pending.granted and "PendingManualApproval" in pending.reason
    assert reg.ROLLOUT_KEY not in reg.properties(reg.describe(sm, challenger))


def test_bad_input_names_the_field(local_stack) -> None:
    sm = local_stack.client("sagemaker")
    with pytest.raises(reg.RegistryError, match="status"):
        list(reg.versions(sm, "churn-models", status="Maybe"))
    with pytest.raises(reg.RegistryError, match="model_package_group"):
        reg.check_group_name("no spaces allowed")
    with pytest.raises(reg.RegistryError, match="reason"):
        reg.reject(sm, "arn:aws:sagemaker:us-east-1:123456789012:model-package/x/1", "")


def test_a_retried_registration_gets_its_version_back(local_stack, seed_group) -> None:
    """CreateModelPackage with a ClientToken already used in the group is idempotent, as on
    SageMaker: the nightly register task's retry must not register the night's model twice."""
    group = seed_group(champion="champion")
    sm = local_stack.client("sagemaker")
    champion = sm.describe_model_package(ModelPackageName=group.packages["champion"])
    request = {
        "ModelPackageGroupName": group.name,
        "InferenceSpecification": champion["InferenceSpecification"],
        "ModelApprovalStatus": "PendingManualApproval",
    }

    first = sm.create_model_package(**request, ClientToken="night-1")["ModelPackageArn"]
    again = sm.create_model_package(**request, ClientToken="night-1")["ModelPackageArn"]
    other = sm.create_model_package(**request, ClientToken="night-2")["ModelPackageArn"]

    assert again == first and other != first
    listed = sm.list_model_packages(ModelPackageGroupName=group.name)["ModelPackageSummaryList"]
    assert sorted(p["ModelPackageArn"] for p in listed) == sorted(
        {group.packages["champion"], first, other}
    )
