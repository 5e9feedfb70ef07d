"""The project's boto3 session factory: the provider builds its sessions with it, and they share
one botocore data loader (the point of it) while each keeps its connection's own settings."""

from __future__ import annotations

import json

import boto3
from airflow.models.connection import Connection
from airflow.providers.amazon.aws.hooks import base_aws

from canary_airflow.aws_session import SharedLoaderSessionFactory
from canary_airflow.dev.local_airflow import SESSION_FACTORY, airflow_settings


def _session(key_id: str, region: str) -> boto3.session.Session:
    connection = Connection(
        conn_id=f"aws_{key_id}",
        conn_type="aws",
        login=key_id,
        password="not-a-secret",
        extra=json.dumps({"region_name": region}),
    )
    return SharedLoaderSessionFactory(conn=connection).create_session()


def test_the_provider_builds_sessions_with_the_factory_the_settings_name():
    assert airflow_settings()["AIRFLOW__AWS__SESSION_FACTORY"] == SESSION_FACTORY
    # the root conftest put airflow_settings() in the environment before Airflow was imported
    assert base_aws.SessionFactory is SharedLoaderSessionFactory


def test_sessions_share_one_loader_and_keep_their_own_credentials_and_region():
    one, two = _session("key-one", "eu-west-1"), _session("key-two", "us-east-2")
    # boto3 has no public accessor for a session's botocore session
    loaders = {id(s._session.get_component("data_loader")) for s in (one, two)}
    assert len(loaders) == 1
    assert (one.get_credentials().access_key, one.region_name) == ("key-one", "eu-west-1")
    assert (two.get_credentials().access_key, two.region_name) == ("key-two", "us-east-2")
