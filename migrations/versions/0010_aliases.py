"""Aliases, traffic routes and their audit trail per model name; jobs record how their version
was chosen (route) and which job a shadow copy shadowed (shadow_of)

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_UUID = postgresql.UUID(as_uuid=True)


def _owner() -> sa.Column:
    return sa.Column("owner_id", _UUID, nullable=False)


def _owner_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["owner_id"], ["users.id"], name=op.f(f"fk_{table}_owner_id_users"), ondelete="CASCADE"
    )


def _model_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["model_id"], ["models.id"], name=op.f(f"fk_{table}_model_id_models"), ondelete="CASCADE"
    )


def _updated_at() -> sa.Column:
    return sa.Column(
        "updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
    )


def upgrade():
    op.create_table(
        "model_aliases",
        _owner(),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("alias", sa.String(32), nullable=False),
        sa.Column("model_id", _UUID, nullable=False),
        sa.Column("updated_by", _UUID, nullable=True),
        _updated_at(),
        _owner_fk("model_aliases"),
        _model_fk("model_aliases"),
        sa.PrimaryKeyConstraint("owner_id", "name", "alias", name=op.f("pk_model_aliases")),
    )
    op.create_index("ix_model_aliases_model_id", "model_aliases", ["model_id"])
    op.create_table(
        "model_traffic",
        _owner(),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("model_id", _UUID, nullable=False),
        sa.Column("role", sa.String(8), nullable=False),
        sa.Column("weight", sa.Integer(), nullable=False),
        _updated_at(),
        _owner_fk("model_traffic"),
        _model_fk("model_traffic"),
        sa.CheckConstraint("role IN ('route', 'shadow')", name=op.f("ck_model_traffic_role")),
        sa.CheckConstraint("weight BETWEEN 0 AND 100", name=op.f("ck_model_traffic_weight")),
        sa.PrimaryKeyConstraint(
            "owner_id", "name", "model_id", "role", name=op.f("pk_model_traffic")
        ),
    )
    op.create_index("ix_model_traffic_model_id", "model_traffic", ["model_id"])
    op.create_table(
        "model_alias_events",
        sa.Column("id", _UUID, nullable=False),
        _owner(),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("alias", sa.String(32), nullable=True),
        sa.Column("from_version", sa.Integer(), nullable=True),
        sa.Column("to_version", sa.Integer(), nullable=True),
        sa.Column("traffic", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("actor_id", _UUID, nullable=True),
        sa.Column(
            "at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        _owner_fk("model_alias_events"),
        sa.CheckConstraint("kind IN ('alias', 'traffic')", name=op.f("ck_model_alias_events_kind")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_alias_events")),
    )
    op.create_index(
        "ix_model_alias_events_owner_name_at", "model_alias_events", ["owner_id", "name", "at"]
    )
    # A constant default: PostgreSQL adds the column without rewriting the jobs table.
    op.add_column(
        "jobs",
        sa.Column("route", sa.String(8), server_default="explicit", nullable=False),
    )
    op.add_column("jobs", sa.Column("shadow_of", _UUID, nullable=True))
    op.create_check_constraint(
        op.f("ck_jobs_route"), "jobs", "route IN ('explicit', 'alias', 'traffic', 'shadow')"
    )


def downgrade():
    op.drop_constraint("ck_jobs_route", "jobs", type_="check")
    op.drop_column("jobs", "shadow_of")
    op.drop_column("jobs", "route")
    op.drop_index("ix_model_alias_events_owner_name_at", table_name="model_alias_events")
    op.drop_table("model_alias_events")
    op.drop_index("ix_model_traffic_model_id", table_name="model_traffic")
    op.drop_table("model_traffic")
    op.drop_index("ix_model_aliases_model_id", table_name="model_aliases")
    op.drop_table("model_aliases")
