"""A release through the SDK and the CLI over real HTTP: predict by alias, shadow a candidate,
compare, shift 10 %, promote, roll back."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from click.testing import CliRunner

from mlsp import Client
from mlsp.cli import cli
from tests.fixtures.api import create_api_key
from tests.fixtures.live import serve
from tests.fixtures.models import fit_classifier
from tests.web.aliases.helpers import insert_version
from tests.web.aliases.test_serving import fit_other
from tests.web.jobs.calls import ROWS

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("worker")]


@pytest.fixture
def live(app) -> Iterator[str]:
    with serve(app) as url:
        yield url


def test_release_with_the_sdk_and_cli(live, client, user, tmp_path):
    insert_version(user, fit_classifier(), tmp_path, "churn", 1)
    insert_version(user, fit_other(), tmp_path, "churn", 2)
    key = create_api_key(client, user)["key"]
    runner = CliRunner()

    def mlsp(*args: str, stdin: str | None = None) -> str:
        result = runner.invoke(cli, ["--url", live, "--api-key", key, *args], input=stdin)
        assert result.exit_code == 0, result.output
        return result.stdout

    assert "churn@production -> v1" in mlsp("models", "alias", "set", "churn", "production", "1")
    sdk = Client(live, api_key=key)
    assert sdk.predict("churn@production", ROWS).raw["model_version"] == 1

    mlsp("models", "traffic", "set", "churn", "1=100", "--shadow", "2:100")
    assert sdk.predict("churn", ROWS).raw["route"] == "traffic"
    listed = mlsp("models", "alias", "list", "churn")
    assert "production" in listed and "100" in listed

    mlsp("models", "traffic", "set", "churn", "1=90", "2=10")
    assert sdk.model_name("churn")["traffic"]["routes"][1] == {"version": 2, "weight": 10}

    promoted = mlsp("models", "alias", "set", "churn", "production", "2")
    assert "was v1" in promoted
    mlsp("models", "traffic", "clear", "churn")
    assert sdk.predict("churn", ROWS).raw["model_version"] == 2  # production now

    back = sdk.set_alias("churn", "production", 1)
    assert back["previous_version"] == 2
    assert sdk.predict("churn", ROWS).raw["model_version"] == 1
    by_cli = json.loads(
        mlsp("--json", "predict", "churn@production", "-i", "-", stdin=json.dumps(ROWS))
    )
    assert (by_cli["model_version"], by_cli["route"]) == (1, "alias")
    pinned = json.loads(mlsp("--json", "predict", "churn:2", "-i", "-", stdin=json.dumps(ROWS)))
    assert (pinned["model_version"], pinned["route"]) == (2, "explicit")
    history = sdk.alias_history("churn")
    assert [(e["from_version"], e["to_version"]) for e in history if e["kind"] == "alias"] == [
        (2, 1),
        (1, 2),
        (None, 1),
    ]
    analytics = sdk.name_analytics("churn")
    assert set(analytics["versions"]) == {"1", "2"}
