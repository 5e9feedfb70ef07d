"""The rollout DAG writes its outcome back to the Model Registry (task ``update_registry``)."""

from __future__ import annotations

from canary.models import registry as reg


def test_rolled_back_package_is_rejected_with_the_gates_reason(
    local_stack, seed_group, run_dag, unique_name, fast_rollout
) -> None:
    group = seed_group(champion="champion", challenger="worse")
    worse = group.packages["worse"]
    conf = {
        **fast_rollout,
        "endpoint_name": f"reject-{unique_name}",
        "champion_source": group.packages["champion"],
        "challenger_source": worse,
    }

    run = run_dag("sagemaker_canary_rollout", conf)

    assert run.state == "success"
    assert run.xcom("rollback")["outcome"] == "rolled_back"
    record = run.xcom("update_registry")
    assert record["status"] == reg.REJECTED
    gate_reasons = [
        run.xcom(f"stage_{n}.gate")["reason"] for n in (1, 2, 3) if run.xcom(f"stage_{n}.gate")
    ]
    package = local_stack.client("sagemaker").describe_model_package(ModelPackageName=worse)
    assert package["ModelApprovalStatus"] == reg.REJECTED
    assert package["ApprovalDescription"] == gate_reasons[-1]
    assert package["CustomerMetadataProperties"][reg.OUTCOME_KEY] == "rolled_back"
    # the champion keeps its crown
    sm = local_stack.client("sagemaker")
    assert reg.find_champion(sm, group.name) == group.packages["champion"]


def test_update_registry_is_a_no_op_without_a_model_package(
    run_dag, unique_name, fast_rollout
) -> None:
    conf = {
        **fast_rollout,
        "endpoint_name": f"nopkg-{unique_name}",
        "champion_source": "demo:champion",
        "challenger_source": "demo:worse",
    }

    run = run_dag("sagemaker_canary_rollout", conf)

    assert run.state_of("update_registry") == "success"
    assert run.xcom("update_registry") == {
        "updated": False,
        "reason": "challenger is not a model package",
    }
