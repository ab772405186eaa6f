"""Index votes by (article, time, rating) for per-article window reports.

`report article` (histogram, daily votes) and the few rows a top list fills in
ask for one article's votes in a window; with only the primary key
(article_id, voter_id) that meant visiting every vote of a popular article.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(op.f("ix_votes_article_id_voted_at_rating"), "votes", ["article_id", "voted_at", "rating"])


def downgrade() -> None:
    op.drop_index(op.f("ix_votes_article_id_voted_at_rating"), table_name="votes")
