"""The project's boto3 session factory: the provider builds its sessions with it, and they share
one botocore data loader (the point of it) while each keeps its connection's own settings."""

from __future__ import annotations

import json

import boto3
from airflow.models.connection import Connection
from airflow.providers.amazon.aws.hooks import base_aws

from canary_airflow.dev.local_airflow import SESSION_FACTORY


def _session(key_id: str, region: str) -> boto3.session.Session:
    connection = Connection(
        conn_id=f"aws_{key_id}",
        conn_type="aws",
        login=key_id,
        password="not-a-secret",
        extra=json.dumps({"region_name": region}),
    )
    return base_aws.SessionFactory(conn=connection).create_session()


def test_the_provider_builds_sessions_with_the_factory_the_settings_name():
    # the root conftest put the project's Airflow settings in the environment before Airflow
    # was imported; the class is never imported directly (see canary_airflow.aws_session)
    factory = base_aws.SessionFactory
    assert f"{factory.__module__}.{factory.__qualname__}" == SESSION_FACTORY


def test_sessions_share_one_loader_and_keep_their_own_credentials_and_region():
    one, two = _session("key-one", "eu-west-1"), _session("key-two", "us-east-2")
    # boto3 has no public accessor for a session's botocore session
    loaders = [s._session.get_component("data_loader") for s in (one, two)]
    assert loaders[0] is loaders[1]
    paths = loaders[0].search_paths
    assert len(paths) == len(set(paths))  # boto3's data folder is not added once per session
    assert (one.get_credentials().access_key, one.region_name) == ("key-one", "eu-west-1")
    assert (two.get_credentials().access_key, two.region_name) == ("key-two", "us-east-2")
