"""Schema 1: runs, sessions and evaluations, as clbench first wrote them.

Revision ID: 0001
A store of schema 1 is stamped here before it is upgraded; nothing runs.
"""

revision = "0001"
down_revision = None


def upgrade() -> None:
    pass  # schema-1 stores were created whole by `Base.metadata.create_all`
