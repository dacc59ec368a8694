"""shadow copies send no webhook events: a shadow job's result is never returned to its caller,
so it is not announced either (the jobs triggers of 0009 skip rows whose route is 'shadow')

Revision ID: 0011
Revises: 0010
"""

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

_TERMINAL = "NEW.status IN ('succeeded', 'failed', 'expired')"
# (trigger, operation, the WHEN clause 0009 gave it)
_JOB_TRIGGERS = (
    ("webhook_job_inserted", "INSERT", _TERMINAL),
    ("webhook_job_finished", "UPDATE OF status", f"OLD.status <> NEW.status AND {_TERMINAL}"),
)


def _replace(name: str, operation: str, when: str) -> None:
    op.execute(f"DROP TRIGGER {name} ON jobs")
    op.execute(
        f"CREATE TRIGGER {name} AFTER {operation} ON jobs FOR EACH ROW"
        f" WHEN ({when}) EXECUTE FUNCTION webhook_outbox()"
    )


def upgrade():
    for name, operation, when in _JOB_TRIGGERS:
        _replace(name, operation, f"{when} AND NEW.route <> 'shadow'")


def downgrade():
    for name, operation, when in _JOB_TRIGGERS:
        _replace(name, operation, when)
