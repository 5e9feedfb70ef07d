"""docker-compose.yaml is consistent (Docker cannot run here, so check what it says)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml

from canary_airflow.dev.local_airflow import SESSION_FACTORY
from local_sagemaker.__main__ import parse_args

ROOT = Path(__file__).resolve().parents[2]
AIRFLOW_SERVICES = {
    "airflow-apiserver": "api-server",
    "airflow-scheduler": "scheduler",
    "airflow-dag-processor": "dag-processor",
    "airflow-triggerer": "triggerer",
}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yaml").read_text())


def _env(service: dict) -> dict[str, str]:
    env = service.get("environment", {})
    return env if isinstance(env, dict) else dict(item.split("=", 1) for item in env)


def test_services_and_commands(compose):
    services = compose["services"]
    assert set(services) == {*AIRFLOW_SERVICES, "airflow-init", "postgres", "local-stack"}
    for name, command in AIRFLOW_SERVICES.items():
        assert services[name]["command"] == [command]
    assert "airflow db migrate" in " ".join(services["airflow-init"]["command"])


def test_image_extends_airflow_with_pinned_requirements(compose):
    dockerfile = compose["services"]["airflow-scheduler"]["build"]["dockerfile_inline"]
    base = re.search(r"^FROM apache/airflow:(\S+)", dockerfile, re.M)
    assert base and base.group(1).startswith("3.3.2")
    assert "requirements.txt" in dockerfile
    pins = (ROOT / "requirements.txt").read_text()
    assert "apache-airflow==3.3.2" in pins and "moto==" in pins


def test_local_executor_on_postgres_and_one_jwt_secret(compose):
    services = compose["services"]
    envs = [_env(services[name]) for name in [*AIRFLOW_SERVICES, "airflow-init"]]
    for env in envs:
        assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
        assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://")
        assert "@postgres:5432/" in env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
        assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"].startswith(
            "http://airflow-apiserver:8080/"
        )
    assert len({env["AIRFLOW__API_AUTH__JWT_SECRET"] for env in envs}) == 1
    assert envs[0]["AIRFLOW__API_AUTH__JWT_SECRET"].startswith("${")  # from the environment


def test_hooks_share_botocore_data_as_in_the_projects_settings(compose):
    services = compose["services"]
    for name in AIRFLOW_SERVICES:
        assert _env(services[name])["AIRFLOW__AWS__SESSION_FACTORY"] == SESSION_FACTORY


def test_aws_connection_points_at_the_local_stack_service(compose):
    services = compose["services"]
    stack = services["local-stack"]
    port = stack["command"][stack["command"].index("--port") + 1]
    for name in AIRFLOW_SERVICES:
        conn = json.loads(_env(services[name])["AIRFLOW_CONN_AWS_DEFAULT"])
        assert conn["conn_type"] == "aws"
        url = urlparse(conn["extra"]["endpoint_url"])
        assert (url.hostname, str(url.port)) == ("local-stack", port)
        assert conn["extra"]["region_name"] == "us-east-1"


def test_mounts_and_python_path(compose):
    services = compose["services"]
    for name in AIRFLOW_SERVICES:
        volumes = services[name]["volumes"]
        for folder in ("dags", "include", "plugins"):
            assert f"./{folder}:/opt/airflow/{folder}" in volumes
            assert (ROOT / folder).is_dir()
        assert _env(services[name])["PYTHONPATH"] == "/opt/airflow/include"
    assert "./include:/opt/airflow/include" in services["local-stack"]["volumes"]


def test_depends_on_and_health(compose):
    services = compose["services"]
    for name in AIRFLOW_SERVICES:
        deps = services[name]["depends_on"]
        assert deps["postgres"]["condition"] == "service_healthy"
        assert deps["local-stack"]["condition"] == "service_healthy"
        assert deps["airflow-init"]["condition"] == "service_completed_successfully"
    for name in ("airflow-scheduler", "airflow-triggerer"):
        assert services[name]["depends_on"]["airflow-apiserver"]["condition"] == "service_healthy"
    assert "/_local_sagemaker/health" in " ".join(services["local-stack"]["healthcheck"]["test"])


def test_only_the_compose_stack_leaves_loopback(compose, capsys):
    stack = compose["services"]["local-stack"]["command"]
    assert stack[:3] == ["python", "-m", "local_sagemaker"]
    assert stack[stack.index("--host") + 1] == "0.0.0.0" and "--container-bind" in stack
    for service in compose["services"].values():
        for mapping in service.get("ports", []):
            assert mapping.startswith("127.0.0.1:"), mapping
    # the same arguments without --container-bind are refused, naming the reason
    with pytest.raises(SystemExit) as refused:
        parse_args(stack[3:-1])
    assert refused.value.code == 2
    assert "loopback" in capsys.readouterr().err


def test_no_secret_literals(compose):
    text = (ROOT / "docker-compose.yaml").read_text()
    assert "POSTGRES_PASSWORD: ${AIRFLOW_POSTGRES_PASSWORD:?" in text
    assert not re.search(r"(?i)(secret|password)\w*:\s*[\"']?(?!\$\{)[A-Za-z0-9]{8,}", text)
