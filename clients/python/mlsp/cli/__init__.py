"""`mlsp`: the command line of the ML Model Serving Platform, built on the SDK."""

from __future__ import annotations

from typing import Any

import click

from mlsp.cli import account, aliases, batch, batches, jobs, models
from mlsp.cli.config import State
from mlsp.errors import MlspError


class _Group(click.Group):
    """Answers API errors with their code and message instead of a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except MlspError as err:
            raise click.ClickException(str(err)) from err


@click.group(cls=_Group)
@click.option("--url", envvar="MLSP_URL", help="Server URL [env MLSP_URL; default: config].")
@click.option("--api-key", envvar="MLSP_API_KEY", help="API key [env MLSP_API_KEY].")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
@click.version_option(package_name="mlsp")
@click.pass_context
def cli(ctx: click.Context, url: str | None, api_key: str | None, as_json: bool) -> None:
    """Upload scikit-learn models and get predictions from an mlsp server.

    Start with `mlsp login`; credentials come from --url/--api-key, then MLSP_URL/MLSP_API_KEY,
    then the config file that login writes.
    """
    state = ctx.ensure_object(State)
    state.url, state.api_key = url, api_key
    state.json = state.json or as_json


for _command in (
    *account.COMMANDS,
    *models.COMMANDS,
    *jobs.COMMANDS,
    batch.predict_file,
    *batches.COMMANDS,
):
    cli.add_command(_command)
for _command in aliases.COMMANDS:  # `mlsp models alias ...`, `mlsp models traffic ...`
    models.models.add_command(_command)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="mlsp")
