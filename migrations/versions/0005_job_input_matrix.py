"""job inputs as a binary matrix

New jobs keep their rows in `input_matrix` (BYTEA, a float64 `.npy`; shared/matrix.py) instead of
the JSONB `inputs`, which PostgreSQL parsed and printed far slower than the model predicted. The
old column stays: rows written before this revision are still read from it.

Revision ID: 0005
Revises: 0004
"""
import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("jobs", sa.Column("input_matrix", sa.LargeBinary(), nullable=True))


def downgrade():
    op.drop_column("jobs", "input_matrix")
