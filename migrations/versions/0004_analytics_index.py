"""analytics covering index

Replaces ix_jobs_model_created (model_id, created_at) with the same key plus INCLUDE columns, so
the analytics queries are index-only scans (bench/analytics_1m.py). Same key, so every query
that used the old index uses this one; one index instead of two on the hottest table.

Revision ID: 0004
Revises: 0003
"""
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

INCLUDE = ["status", "n_rows", "cache_hit", "queue_ms", "inference_ms", "total_ms"]


def upgrade():
    # CONCURRENTLY (outside the migration's transaction): a big jobs table keeps taking writes
    # while the index builds.
    with op.get_context().autocommit_block():
        op.create_index(
            "ix_jobs_model_created_cover",
            "jobs",
            ["model_id", "created_at"],
            postgresql_include=INCLUDE,
            postgresql_concurrently=True,
            if_not_exists=True,
        )
        op.drop_index(
            "ix_jobs_model_created", table_name="jobs", postgresql_concurrently=True, if_exists=True
        )


def downgrade():
    with op.get_context().autocommit_block():
        op.create_index(
            "ix_jobs_model_created",
            "jobs",
            ["model_id", "created_at"],
            postgresql_concurrently=True,
            if_not_exists=True,
        )
        op.drop_index(
            "ix_jobs_model_created_cover",
            table_name="jobs",
            postgresql_concurrently=True,
            if_exists=True,
        )
