"""job input matrices stored without compression

A float64 `.npy` of measured values does not compress: PostgreSQL's default for BYTEA (`EXTENDED`)
still tried, and storing 100,000 × 20 values (16 MB) took 0.42-0.57 s with nothing saved against
0.25-0.28 s with `EXTERNAL` (out of line, uncompressed). Only the column's storage mode changes:
no rewrite, existing values stay as they are.

Revision ID: 0006
Revises: 0005
"""
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade():
    op.execute("ALTER TABLE jobs ALTER COLUMN input_matrix SET STORAGE EXTERNAL")


def downgrade():
    op.execute("ALTER TABLE jobs ALTER COLUMN input_matrix SET STORAGE EXTENDED")
