"""A boto3 session factory for the Amazon provider that shares botocore's data loader.

Why: every provider hook (and :class:`canary_airflow.aws.AwsClients`) builds a new boto3 session,
and a new session parses botocore's JSON data (endpoints, the service's model) again before its
first client: 75-160 ms a client here, against 15-30 ms with one loader for the process
(measured 2026-12-06). A rollout task builds three to five clients, and a demo run spent a fifth
of its CPU building them. The loader holds only botocore's static data files, never credentials
or configuration, so sharing it is safe; the provider does the same for its async sessions
(``base_aws._loader``, boto/botocore#3078).

Enabled with the provider's own setting, ``[aws] session_factory``
(``AIRFLOW__AWS__SESSION_FACTORY``); the project's Airflow settings set it. A session that
assumes a role is built by the provider as before, with a loader of its own. Like the
provider's shared loader, it reads botocore's bundled data only (``AWS_DATA_PATH`` is not
searched).

Airflow loads this class while it imports ``base_aws``; importing this module first, with the
setting in force, would make ``base_aws`` ask for the class before it exists. Refer to it as
``base_aws.SessionFactory``, never by importing it.
"""

from __future__ import annotations

import threading
from typing import Any

import boto3
import botocore.loaders
import botocore.session
from airflow.providers.amazon.aws.hooks.base_aws import BaseSessionFactory

_LOADER = botocore.loaders.Loader()
_LOADER_PATHS = threading.Lock()


class SharedLoaderSessionFactory(BaseSessionFactory):
    """The provider's session factory, with one botocore data loader for the process."""

    def _create_basic_session(self, session_kwargs: dict[str, Any]) -> boto3.session.Session:
        core = botocore.session.get_session()
        core.register_component("data_loader", _LOADER)
        with _LOADER_PATHS:
            session = boto3.session.Session(botocore_session=core, **session_kwargs)
            # boto3 adds its own data folder to the loader's search paths at every session:
            # keep each folder once, or the shared list grows for the life of the process
            paths = _LOADER.search_paths
            paths[:] = dict.fromkeys(paths)
        return session
