"""Where a rollout keeps its records in S3: one module, so every writer and reader agrees.

::

    s3://{bucket}/{prefix}/capture/...                      Data Capture (SageMaker writes it)
    s3://{bucket}/{prefix}/ground-truth/yyyy/mm/dd/hh/...   labels, in Model Monitor's layout
    s3://{bucket}/{prefix}/{endpoint}/{run}/replay/...      replayed requests and replay state
    s3://{bucket}/{prefix}/{endpoint}/{run}/gates/shadow/   the shadow stage's looks and decisions
    s3://{bucket}/{prefix}/{endpoint}/{run}/gates/stage-N/  looks, decisions/*, decided.json
    s3://{bucket}/{prefix}/{endpoint}/{run}/report/         the HTML report and its charts

and on the worker's disk, ``$CANARY_REPORTS_DIR/{run}/`` (the report and its charts).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from canary.plan import RolloutPlan, short_digest, stage_name

if TYPE_CHECKING:
    from canary.replay.records import S3Location


RUN_DIGEST_LENGTH = 8  # hex digits of a run id's digest in its key
#: The longest run key: it is a tag value (AWS: at most 256 characters) and a folder name (at
#: most 255 bytes), and Airflow accepts run ids of 250 characters.
RUN_KEY_MAX_LENGTH = 128


def run_key(run_id: str) -> str:
    """An Airflow run id as a folder name in S3 and on disk: the key every record of the run
    is filed under. The readable part keeps letters, digits, ``-``, ``_`` and ``.`` (a
    ``manual__2026-…+00:00`` id has ``:`` and ``+``); a digest of the whole id follows it,
    because that mapping is not one to one (``…T00:00`` and ``…T00-00`` would share a folder,
    and with it decisions) and Airflow accepts ``..`` as a run id (its folder would be the
    reports folder's parent). A long id keeps only the start of its readable part, so the
    key stays within RUN_KEY_MAX_LENGTH; the digest still tells ids apart."""
    readable = "".join(char if char.isalnum() or char in "-_." else "-" for char in run_id)
    readable = readable[: RUN_KEY_MAX_LENGTH - 1 - RUN_DIGEST_LENGTH]
    return f"{readable}-{short_digest(run_id, RUN_DIGEST_LENGTH)}"


#: Where reports are written on disk, a folder per run; unset: ``reports`` in the working folder.
REPORTS_DIR_ENV = "CANARY_REPORTS_DIR"


def reports_dir(default: Path = Path("reports")) -> Path:
    """The folder of every run's report folder (:data:`REPORTS_DIR_ENV`, else ``default``)."""
    return Path(os.environ.get(REPORTS_DIR_ENV, default))


def run_prefix(plan: RolloutPlan, run_key: str) -> str:
    """Where this run's records live: one folder per endpoint and run."""
    return f"{plan.prefix}/{plan.endpoint_name}/{run_key}"


def capture_uri(plan: RolloutPlan) -> str:
    """Data Capture's destination, shared by every run of the endpoint."""
    return f"s3://{plan.bucket}/{plan.prefix}/capture"


def ground_truth_prefix(plan: RolloutPlan) -> str:
    """Labels for every captured request of the endpoint, in Model Monitor's layout."""
    return f"{plan.prefix}/ground-truth"


def ground_truth_uri(plan: RolloutPlan) -> str:
    return f"s3://{plan.bucket}/{ground_truth_prefix(plan)}"


def gates_prefix(plan: RolloutPlan, run_key: str) -> str:
    """Where a run's gates keep their looks and every decision record, one folder per stage."""
    return f"{run_prefix(plan, run_key)}/gates/"


def stage_state_key(plan: RolloutPlan, run_key: str, stage: int, name: str) -> str:
    """One file of stage ``stage``'s gate state (stages count from 0 here, 1 in the key)."""
    return f"{gates_prefix(plan, run_key)}{stage_name(stage)}/{name}"


def report_key(plan: RolloutPlan, run_key: str, name: str) -> str:
    return f"{run_prefix(plan, run_key)}/report/{name}"


def replay_location(plan: RolloutPlan, run_key: str) -> S3Location:
    """Where a run's replayed requests, their ground truth and the replay state live."""
    from canary.replay.records import S3Location  # pandas: only where replays are read

    return S3Location(
        bucket=plan.bucket,
        prefix=f"{run_prefix(plan, run_key)}/replay",
        ground_truth_prefix=ground_truth_prefix(plan),
    )
