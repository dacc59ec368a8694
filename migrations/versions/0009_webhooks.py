"""webhooks: endpoints, the deliveries outbox, and the triggers that fill it

`webhook_endpoints` holds a user's receiver URLs (events, optional model filter, encrypted signing
secret); `webhook_deliveries` is the outbox, one row per event and endpoint. Rows are written by
AFTER triggers on jobs, batches and models, in the transaction that makes the row terminal: every
code path that finishes a job (the worker's one result statement, inline inserts, recovery, the
reaper, time kills, expiry) produces its event, and a rolled-back change never does. The triggers'
WHEN clauses keep every other write free of any call; a finishing row costs one index probe of the
owner's active endpoints.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

EVENTS = ("job.succeeded", "job.failed", "batch.finished", "model.ready", "model.failed")

OUTBOX_FUNCTION = """
CREATE FUNCTION webhook_outbox() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    kind varchar;
    subject_model uuid;
BEGIN
    -- Most owners have no endpoint: one probe of a partial index, then out. Cheaper than
    -- starting the INSERT below (measured ~9 against ~15 us a finished row; docs/webhooks.md).
    PERFORM 1 FROM webhook_endpoints AS e WHERE e.owner_id = NEW.owner_id AND e.is_active;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    IF TG_TABLE_NAME = 'models' THEN
        kind := CASE NEW.status WHEN 'ready' THEN 'model.ready' ELSE 'model.failed' END;
        subject_model := NEW.id;
    ELSIF TG_TABLE_NAME = 'batches' THEN
        kind := 'batch.finished';
        subject_model := NEW.model_id;
    ELSE
        kind := CASE NEW.status WHEN 'succeeded' THEN 'job.succeeded' ELSE 'job.failed' END;
        subject_model := NEW.model_id;
    END IF;
    INSERT INTO webhook_deliveries (endpoint_id, event, subject_id)
    SELECT e.id, kind, NEW.id FROM webhook_endpoints AS e
    WHERE e.owner_id = NEW.owner_id AND e.is_active AND kind = ANY (e.events)
        AND (e.model_id IS NULL OR e.model_id = subject_model);
    RETURN NULL;
END
$$
"""

# (trigger, table, operation, terminal statuses that make an event)
TRIGGERS = (
    ("webhook_job_inserted", "jobs", "INSERT", ("succeeded", "failed", "expired")),
    ("webhook_job_finished", "jobs", "UPDATE OF status", ("succeeded", "failed", "expired")),
    (
        "webhook_batch_finished",
        "batches",
        "UPDATE OF status",
        ("succeeded", "partial", "failed", "cancelled"),
    ),
    ("webhook_model_inserted", "models", "INSERT", ("ready", "failed")),
    ("webhook_model_validated", "models", "UPDATE OF status", ("ready", "failed")),
)


def _create_trigger(name: str, table: str, operation: str, statuses: tuple[str, ...]) -> None:
    terminal = f"NEW.status IN ({', '.join(repr(s) for s in statuses)})"
    when = terminal if operation == "INSERT" else f"OLD.status <> NEW.status AND {terminal}"
    op.execute(
        f"CREATE TRIGGER {name} AFTER {operation} ON {table} FOR EACH ROW"
        f" WHEN ({when}) EXECUTE FUNCTION webhook_outbox()"
    )


def upgrade():
    op.create_table(
        "webhook_endpoints",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("owner_id", sa.UUID(), nullable=False),
        sa.Column("url", sa.String(length=2048), nullable=False),
        sa.Column("events", postgresql.ARRAY(sa.String(length=32)), nullable=False),
        sa.Column("model_id", sa.UUID(), nullable=True),
        sa.Column("secret_ciphertext", sa.Text(), nullable=False),
        sa.Column("is_active", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("disabled_reason", sa.String(length=16), nullable=True),
        sa.Column("failing_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "cardinality(events) > 0 AND events <@ ARRAY["
            + ", ".join(f"'{e}'" for e in EVENTS)
            + "]::varchar[]",
            name=op.f("ck_webhook_endpoints_events"),
        ),
        sa.CheckConstraint(
            "disabled_reason IS NULL OR disabled_reason IN ('gone', 'failing')",
            name=op.f("ck_webhook_endpoints_disabled_reason"),
        ),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["models.id"],
            name=op.f("fk_webhook_endpoints_model_id_models"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["owner_id"],
            ["users.id"],
            name=op.f("fk_webhook_endpoints_owner_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_endpoints")),
    )
    op.create_index(
        "ix_webhook_endpoints_owner_created", "webhook_endpoints", ["owner_id", "created_at"]
    )
    op.create_index(
        "ix_webhook_endpoints_owner_active",
        "webhook_endpoints",
        ["owner_id"],
        postgresql_where=sa.text("is_active"),
    )

    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("endpoint_id", sa.UUID(), nullable=False),
        sa.Column("event", sa.String(length=32), nullable=False),
        sa.Column("subject_id", sa.UUID(), nullable=True),
        sa.Column("body", sa.Text(), nullable=True),
        sa.Column("status", sa.String(length=16), server_default="pending", nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("last_status_code", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column(
            "next_attempt_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=True,
        ),
        sa.Column("last_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "status IN ('pending', 'delivered', 'failed')",
            name=op.f("ck_webhook_deliveries_status"),
        ),
        sa.CheckConstraint(
            "event IN (" + ", ".join(f"'{e}'" for e in (*EVENTS, "webhook.test")) + ")",
            name=op.f("ck_webhook_deliveries_event"),
        ),
        sa.ForeignKeyConstraint(
            ["endpoint_id"],
            ["webhook_endpoints.id"],
            name=op.f("fk_webhook_deliveries_endpoint_id_webhook_endpoints"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_deliveries")),
    )
    op.create_index(
        "ix_webhook_deliveries_endpoint_created",
        "webhook_deliveries",
        ["endpoint_id", "created_at"],
    )
    op.create_index(
        "ix_webhook_deliveries_due",
        "webhook_deliveries",
        ["next_attempt_at"],
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_index("ix_webhook_deliveries_created", "webhook_deliveries", ["created_at"])

    op.execute(OUTBOX_FUNCTION)
    for trigger in TRIGGERS:
        _create_trigger(*trigger)


def downgrade():
    for name, table, _, _ in TRIGGERS:
        op.execute(f"DROP TRIGGER {name} ON {table}")
    op.execute("DROP FUNCTION webhook_outbox()")
    op.drop_table("webhook_deliveries")
    op.drop_table("webhook_endpoints")
