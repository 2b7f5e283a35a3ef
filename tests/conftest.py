"""Shared pytest fixtures: fake credentials, moto in process, moto over HTTP."""

from __future__ import annotations

import os
import urllib.request
from collections.abc import Iterator

import boto3
import pytest

from bedrock_sql import simulated_bedrock

# moto has no imported models, import/copy jobs, provisioned throughput or deployments: teach
# its Bedrock before any mock_aws or ThreadedMotoServer answers (see simulated_bedrock).
simulated_bedrock.install()

# Variables that would point boto3 at a real account, profile or endpoint.
_AWS_ENV_TO_CLEAR = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_ENDPOINT_URL",
    "AWS_ROLE_ARN",
    "AWS_ROLE_SESSION_NAME",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_REGION",
    "BEDROCK_SQL_DB",
    "BEDROCK_SQL_EXCEPTIONS",  # check and diff would mute findings the tests expect
)


@pytest.fixture(autouse=True)
def fake_aws_environment(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Fake credentials; a developer's real AWS config and endpoints are never read."""
    for name in list(os.environ):
        if name in _AWS_ENV_TO_CLEAR or name.startswith("AWS_ENDPOINT_URL_"):
            monkeypatch.delenv(name, raising=False)
    nowhere = tmp_path_factory.getbasetemp() / "no-aws-config"
    monkeypatch.setenv("AWS_CONFIG_FILE", str(nowhere / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(nowhere / "credentials"))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture
def aws() -> Iterator[boto3.Session]:
    """A boto3 Session inside ``moto.mock_aws`` (in-process AWS, fresh for each test)."""
    import moto

    with moto.mock_aws():
        yield boto3.Session(region_name="us-east-1")


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """A ``ThreadedMotoServer`` on a free local port for the whole run; yields its URL.

    It runs in this process, so it shares moto's backends with ``mock_aws`` and with
    :mod:`bedrock_sql.estate`'s nudges. Use ``moto_url`` to get it with fresh state.
    """
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def reset_moto_server(url: str) -> None:
    """Drop every resource in every account and region of the server."""
    request = urllib.request.Request(f"{url}/moto-api/reset", data=b"", method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        response.read()


@pytest.fixture
def moto_url(moto_server: str) -> str:
    """The moto server's URL, with its state reset before the test."""
    reset_moto_server(moto_server)
    return moto_server


@pytest.fixture
def server_session(moto_url: str) -> boto3.Session:
    """A boto3 Session for the moto server: pass ``endpoint_url=moto_url`` to its clients."""
    return boto3.Session(region_name="us-east-1")
