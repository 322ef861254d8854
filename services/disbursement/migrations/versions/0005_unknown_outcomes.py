"""Payments whose outcome is unknown: the bank's status is asked for, the statement settles
them, an officer settles them by hand under four eyes. Four-eyes on rounds ignores case.

Revision ID: 0005
Revises: 0004
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

UPGRADE = [
    # Officers' ids are compared case-folded (QA.PREP is qa.prep); rows written before are folded too.
    "UPDATE payment_round SET prepared_by = lower(prepared_by), approved_by = lower(approved_by), created_by = lower(created_by), "
    "closed_by = lower(closed_by)",
    "UPDATE round_entry SET added_by = lower(added_by) WHERE added_by IS NOT NULL",
    "ALTER TABLE payment_round DROP CONSTRAINT round_four_eyes",
    "ALTER TABLE payment_round ADD CONSTRAINT round_four_eyes CHECK (approved_by IS NULL OR lower(approved_by) <> lower(prepared_by))",
    # When the bank was last asked about an attempt whose result never came, and what it said.
    "ALTER TABLE payment_attempt ADD COLUMN status_checks integer NOT NULL DEFAULT 0",
    "ALTER TABLE payment_attempt ADD COLUMN status_checked_at timestamptz",
    "ALTER TABLE payment_attempt ADD COLUMN status_note text",
    "CREATE INDEX ix_payment_sent ON payment (sent_at, id) WHERE status = 'sent'",
    # A settlement by hand: proposed by one officer with a reason, approved by another.
    """
    CREATE TABLE payment_settlement (
        id uuid PRIMARY KEY,
        payment_id uuid NOT NULL REFERENCES payment (id),
        attempt integer NOT NULL CONSTRAINT settlement_attempt CHECK (attempt >= 1),
        outcome text NOT NULL CONSTRAINT settlement_outcome CHECK (outcome IN ('succeeded','failed')),
        reason text NOT NULL,
        bank_reference text,
        status text NOT NULL DEFAULT 'proposed'
            CONSTRAINT settlement_status CHECK (status IN ('proposed','applied','superseded','rejected')),
        proposed_by text NOT NULL,
        proposed_at timestamptz NOT NULL DEFAULT now(),
        decided_by text,
        decided_at timestamptz,
        decision_note text,
        result text,
        CONSTRAINT settlement_four_eyes CHECK (decided_by IS NULL OR status = 'rejected' OR lower(decided_by) <> lower(proposed_by)),
        CONSTRAINT settlement_decided CHECK ((status = 'proposed') = (decided_by IS NULL))
    )
    """,
    "CREATE UNIQUE INDEX ux_settlement_open ON payment_settlement (payment_id) WHERE status = 'proposed'",
    "CREATE INDEX ix_settlement_status ON payment_settlement (status, proposed_at)",
    # A statement line may report a failed instruction (no money moved).
    "ALTER TABLE bank_statement_line DROP CONSTRAINT statement_line_direction",
    "ALTER TABLE bank_statement_line ADD CONSTRAINT statement_line_direction CHECK (direction IN ('debit','credit','failure'))",
    "DROP INDEX ux_statement_line_match",
    "CREATE UNIQUE INDEX ux_statement_line_match ON bank_statement_line (payment_id, direction) "
    "WHERE outcome = 'matched' AND direction IN ('debit','credit')",
]

DOWNGRADE = [
    "DROP INDEX ux_statement_line_match",
    "DELETE FROM bank_statement_line WHERE direction = 'failure'",
    "CREATE UNIQUE INDEX ux_statement_line_match ON bank_statement_line (payment_id, direction) WHERE outcome = 'matched'",
    "ALTER TABLE bank_statement_line DROP CONSTRAINT statement_line_direction",
    "ALTER TABLE bank_statement_line ADD CONSTRAINT statement_line_direction CHECK (direction IN ('debit','credit'))",
    "DROP TABLE payment_settlement",
    "DROP INDEX ix_payment_sent",
    "ALTER TABLE payment_attempt DROP COLUMN status_note, DROP COLUMN status_checked_at, DROP COLUMN status_checks",
    "ALTER TABLE payment_round DROP CONSTRAINT round_four_eyes",
    "ALTER TABLE payment_round ADD CONSTRAINT round_four_eyes CHECK (approved_by IS NULL OR approved_by <> prepared_by)",
]


def upgrade() -> None:
    for statement in UPGRADE:
        op.execute(statement)


def downgrade() -> None:
    for statement in DOWNGRADE:
        op.execute(statement)
