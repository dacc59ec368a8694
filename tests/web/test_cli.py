"""The Flask CLI commands (web/cli.py)."""

from __future__ import annotations

from sqlalchemy import select

from shared.db import session_scope
from shared.models import User
from tests.fixtures.api import PASSWORD


def test_create_admin_cli(app):
    runner = app.test_cli_runner()
    result = runner.invoke(
        args=["create-admin", "root@example.com"], env={"MLSP_ADMIN_PASSWORD": PASSWORD}
    )
    assert result.exit_code == 0, result.output
    with session_scope() as s:
        assert s.scalar(select(User.is_admin).where(User.email == "root@example.com")) is True
