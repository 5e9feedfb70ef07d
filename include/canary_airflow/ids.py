"""DAG and task ids, named once: the DAG files build tasks with them, the glue reads XComs by them.

Why constants: a task renamed in a DAG file while the glue still pulls the old id would make
cleanup silently see an empty manifest. With one name there is nothing to keep in sync.
"""

from __future__ import annotations

from canary.plan import SHADOW_NUMBER

DEFAULT_CONN_ID = "aws_default"  # the AWS connection every task, sensor and trigger uses
# the AWS connection's extra that gives its CloudWatch period (see canary_airflow.aws)
CLOUDWATCH_PERIOD_EXTRA = "cloudwatch_period_seconds"
OWNER = "ml-platform"  # every DAG's owner, as the UI shows and filters it

ROLLOUT_DAG = "sagemaker_canary_rollout"
NIGHTLY_DAG = "nightly_challenger"
REGISTRY_DAG = "model_registry_rollout"

# -- sagemaker_canary_rollout -------------------------------------------------------------------
VALIDATE_PLAN = "validate_plan"
LOCK_ENDPOINT = "lock_endpoint"
STAGE_ARTIFACTS = "stage_artifacts"
BUILD_REQUESTS = "build_requests"
CREATE_MODEL = {"champion": "create_champion_model", "challenger": "create_challenger_model"}
CREATE_ENDPOINT_CONFIG = "create_endpoint_config"
DEPLOY_ENDPOINT = "deploy_endpoint"
STAGE_GROUP = "stage_{number}"
ENTER_STAGE = "enter"
SET_WEIGHTS = "set_weights"
PLAN_BURST = "plan_burst"
REPLAY_BURST = "replay_burst"
GATE = "gate"
APPROVE = "approve"  # a person approves the gate's promotion (plan field ``approval``)
SHADOW_GROUP = "shadow"  # the shadow stage, before the canary stages' groups
SHADOW_PASSED = "passed"  # the shadow gate promoted: the canary stages may start
GO_LIVE = "go_live"  # the endpoint moves from the shadow config to the canary stages' config
CONCLUDE = "conclude"
PROMOTE = "promote"
ROLLBACK = "rollback"
UPDATE_REGISTRY = "update_registry"
REPORT = "report"
CLEANUP = "cleanup"

# -- nightly_challenger -------------------------------------------------------------------------
TRAIN_CHALLENGER = "train_challenger"
BETTER_OFFLINE = "better_offline"
REGISTRATION = "registration"
REGISTER_MODEL_VERSION = "register_model_version"

# -- model_registry_rollout ---------------------------------------------------------------------
CHECK_REQUEST = "check_request"
WAIT_FOR_APPROVAL = "wait_for_approval"
CLAIM_ROLLOUT = "claim_rollout"
START_ROLLOUT = "start_rollout"


def stage_task(number: int, task: str) -> str:
    """The full id of a task inside stage ``number``'s group (stages count from 1; 0 is the
    shadow stage)."""
    group = SHADOW_GROUP if number == SHADOW_NUMBER else STAGE_GROUP.format(number=number)
    return f"{group}.{task}"


def gate_task(number: int) -> str:
    """The gate sensor of stage ``number``, whose XCom is that stage's decision record."""
    return stage_task(number, GATE)


def approve_task(number: int) -> str:
    """The approval of stage ``number``'s promotion, whose XCom is the person's answer."""
    return stage_task(number, APPROVE)


def shadow_task(task: str) -> str:
    """The full id of a task inside the shadow stage's group."""
    return stage_task(SHADOW_NUMBER, task)


#: The shadow stage's gate, whose XCom is that stage's decision record.
SHADOW_GATE = gate_task(SHADOW_NUMBER)
