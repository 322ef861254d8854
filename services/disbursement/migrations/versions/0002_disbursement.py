"""Payable population, programmes and budgets, rounds, payments, channels, reconciliation.

Two triggers keep running sums that CHECK constraints guard, so that the rules hold under
any concurrency and from any code path:

* ``payment_round.committed`` = the amounts of the round's payments that are not cancelled,
  and ``committed <= ceiling``: no round ever pays past its ceiling;
* ``programme_budget.allocated`` = what the year's rounds take from the budget (the
  ceiling while open, what was committed once closed, nothing once cancelled), and
  ``allocated <= amount``.

Revision ID: 0002
Revises: 0001
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TABLES = """
CREATE TABLE payee_person (
    person_id uuid PRIMARY KEY,
    nik_hash text,
    regency_code text,
    status text NOT NULL DEFAULT 'active' CONSTRAINT payee_person_status CHECK (status IN ('active','deceased','merged')),
    date_of_death date,
    merged_into uuid,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ix_payee_person_merged ON payee_person (merged_into) WHERE merged_into IS NOT NULL;

CREATE TABLE payee_enrolment (
    enrolment_id uuid PRIMARY KEY,
    person_id uuid NOT NULL REFERENCES payee_person (person_id),
    programme_code text NOT NULL,
    regency_code text,
    household_id uuid,
    status text NOT NULL DEFAULT 'active' CONSTRAINT payee_enrolment_status CHECK (status IN ('active','ended')),
    active_from date,
    ended_on date,
    end_reason text,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ix_payee_enrolment_programme ON payee_enrolment (programme_code, status);
CREATE INDEX ix_payee_enrolment_person_id ON payee_enrolment (person_id);

CREATE TABLE programme (
    code text PRIMARY KEY,
    name text NOT NULL,
    provincial boolean NOT NULL DEFAULT false,
    exclusive_with text[] NOT NULL DEFAULT '{}',
    default_channel text NOT NULL DEFAULT 'bank' CONSTRAINT programme_channel CHECK (default_channel IN ('bank','post')),
    version integer NOT NULL DEFAULT 1,
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE programme_budget (
    programme_code text NOT NULL REFERENCES programme (code),
    year integer NOT NULL,
    amount bigint NOT NULL CONSTRAINT budget_amount CHECK (amount > 0),
    allocated bigint NOT NULL DEFAULT 0,
    version integer NOT NULL DEFAULT 1,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (programme_code, year),
    CONSTRAINT budget_allocated CHECK (allocated >= 0 AND allocated <= amount)
);

CREATE TABLE payment_round (
    id uuid PRIMARY KEY,
    programme_code text NOT NULL,
    year integer NOT NULL,
    stage integer NOT NULL CONSTRAINT round_stage CHECK (stage >= 1),
    name text NOT NULL,
    amount bigint NOT NULL,
    ceiling bigint NOT NULL,
    period_start date NOT NULL,
    period_end date NOT NULL,
    channel text NOT NULL CONSTRAINT round_channel CHECK (channel IN ('bank','post')),
    status text NOT NULL DEFAULT 'draft'
        CONSTRAINT round_status CHECK (status IN ('draft','snapshot','approved','disbursing','closed','cancelled')),
    created_by text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    prepared_by text,
    snapshot_version integer NOT NULL DEFAULT 0,
    snapshot_at timestamptz,
    payee_count integer NOT NULL DEFAULT 0,
    planned_amount bigint NOT NULL DEFAULT 0,
    approved_by text,
    approved_at timestamptz,
    sk_number text,
    disbursing_at timestamptz,
    closed_by text,
    closed_at timestamptz,
    cancel_reason text,
    committed bigint NOT NULL DEFAULT 0,
    version integer NOT NULL DEFAULT 1,
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT ux_round_stage UNIQUE (programme_code, year, stage),
    CONSTRAINT round_budget FOREIGN KEY (programme_code, year) REFERENCES programme_budget (programme_code, year),
    CONSTRAINT round_amounts CHECK (amount > 0 AND ceiling >= amount),
    CONSTRAINT round_period CHECK (period_end >= period_start),
    CONSTRAINT round_within_ceiling CHECK (committed >= 0 AND committed <= ceiling),
    CONSTRAINT round_four_eyes CHECK (approved_by IS NULL OR approved_by <> prepared_by),
    CONSTRAINT round_approved CHECK (status NOT IN ('approved','disbursing','closed') OR (approved_by IS NOT NULL AND sk_number IS NOT NULL))
);

CREATE TABLE round_entry (
    round_id uuid NOT NULL REFERENCES payment_round (id),
    person_id uuid NOT NULL,
    nik_hash text,
    regency_code text,
    enrolment_id uuid,
    outcome text NOT NULL CONSTRAINT entry_outcome CHECK (outcome IN ('payee','excluded')),
    reason text CONSTRAINT entry_reason
        CHECK (reason IS NULL OR reason IN ('deceased','merged','not_active','already_paid','exclusive_programme','over_budget')),
    detail text,
    amount bigint,
    source text NOT NULL DEFAULT 'snapshot' CONSTRAINT entry_source CHECK (source IN ('snapshot','addition')),
    added_by text,
    note text,
    added_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (round_id, person_id),
    CONSTRAINT entry_reason_iff_excluded CHECK ((outcome = 'payee') = (reason IS NULL))
);
CREATE INDEX ix_round_entry_outcome ON round_entry (round_id, outcome, reason);
CREATE INDEX ix_round_entry_regency ON round_entry (round_id, regency_code, person_id);

CREATE TABLE payment (
    id uuid PRIMARY KEY,
    round_id uuid NOT NULL REFERENCES payment_round (id),
    person_id uuid NOT NULL,
    nik_hash text,
    regency_code text,
    programme_code text NOT NULL,
    year integer NOT NULL,
    stage integer NOT NULL,
    amount bigint NOT NULL CONSTRAINT payment_amount CHECK (amount > 0),
    channel text NOT NULL CONSTRAINT payment_channel CHECK (channel IN ('bank','post')),
    status text NOT NULL DEFAULT 'created'
        CONSTRAINT payment_status CHECK (status IN ('created','sent','succeeded','failed','cancelled','returned')),
    attempt integer NOT NULL DEFAULT 0,
    batch_id uuid,
    failure_reason text,
    cancel_reason text,
    bank_reference text,
    returned_amount bigint,
    return_reason text,
    sent_at timestamptz,
    settled_at timestamptz,
    returned_at timestamptz,
    reconciled_at timestamptz,
    version integer NOT NULL DEFAULT 1,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT ux_payment_round_person UNIQUE (round_id, person_id),
    CONSTRAINT payment_failed_reason CHECK (status <> 'failed' OR failure_reason IS NOT NULL),
    CONSTRAINT payment_cancel_reason CHECK (status <> 'cancelled' OR cancel_reason IS NOT NULL),
    CONSTRAINT payment_returned CHECK (status <> 'returned' OR (returned_amount IS NOT NULL AND returned_amount BETWEEN 1 AND amount)),
    CONSTRAINT payment_attempted CHECK (status IN ('created','cancelled') OR attempt >= 1)
);
CREATE INDEX ix_payment_queue ON payment (channel, id) WHERE status = 'created';
CREATE INDEX ix_payment_regency ON payment (regency_code, created_at, id);
CREATE INDEX ix_payment_person_id ON payment (person_id);

CREATE TABLE payment_attempt (
    payment_id uuid NOT NULL REFERENCES payment (id),
    attempt integer NOT NULL,
    channel text NOT NULL,
    batch_id uuid NOT NULL,
    sent_at timestamptz NOT NULL DEFAULT now(),
    outcome text CONSTRAINT attempt_outcome CHECK (outcome IS NULL OR outcome IN ('succeeded','failed','returned')),
    reason text,
    reference text,
    reported_at timestamptz,
    anomaly text,
    PRIMARY KEY (payment_id, attempt)
);
CREATE INDEX ix_attempt_batch ON payment_attempt (batch_id);
CREATE INDEX ix_attempt_reference ON payment_attempt (reference) WHERE reference IS NOT NULL;

CREATE TABLE bank_batch (
    id uuid PRIMARY KEY,
    status text NOT NULL DEFAULT 'pending' CONSTRAINT bank_batch_status CHECK (status IN ('pending','accepted','rejected')),
    instruction_count integer NOT NULL,
    total_amount bigint NOT NULL,
    post_attempts integer NOT NULL DEFAULT 0,
    last_error text,
    created_at timestamptz NOT NULL DEFAULT now(),
    last_posted_at timestamptz,
    accepted_at timestamptz
);
CREATE INDEX ix_bank_batch_pending ON bank_batch (created_at) WHERE status = 'pending';

CREATE TABLE bank_callback (
    id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    digest text NOT NULL UNIQUE,
    bank_timestamp bigint NOT NULL,
    batch_id text,
    result_count integer NOT NULL,
    applied integer NOT NULL,
    ignored integer NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE post_export (
    id uuid PRIMARY KEY,
    round_id uuid NOT NULL REFERENCES payment_round (id),
    instruction_count integer NOT NULL,
    total_amount bigint NOT NULL,
    created_by text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    results_imported integer NOT NULL DEFAULT 0,
    last_import_at timestamptz
);
CREATE INDEX ix_post_export_round_id ON post_export (round_id);

CREATE TABLE bank_statement (
    id uuid PRIMARY KEY,
    digest text NOT NULL UNIQUE,
    account text,
    imported_by text NOT NULL,
    imported_at timestamptz NOT NULL DEFAULT now(),
    line_count integer NOT NULL,
    matched integer NOT NULL,
    amount_mismatch integer NOT NULL,
    status_mismatch integer NOT NULL,
    unmatched integer NOT NULL,
    duplicate integer NOT NULL
);

CREATE TABLE bank_statement_line (
    statement_id uuid NOT NULL REFERENCES bank_statement (id),
    line_no integer NOT NULL,
    value_date date,
    bank_reference text,
    instruction_id text,
    direction text NOT NULL CONSTRAINT statement_line_direction CHECK (direction IN ('debit','credit')),
    amount bigint NOT NULL,
    payment_id uuid,
    round_id uuid,
    expected_amount bigint,
    outcome text NOT NULL
        CONSTRAINT statement_line_outcome CHECK (outcome IN ('matched','amount_mismatch','status_mismatch','unmatched','duplicate')),
    note text,
    PRIMARY KEY (statement_id, line_no)
);
CREATE INDEX ix_statement_line_outcome ON bank_statement_line (statement_id, outcome, line_no);
CREATE INDEX ix_bank_statement_line_payment_id ON bank_statement_line (payment_id);
CREATE UNIQUE INDEX ux_statement_line_match ON bank_statement_line (payment_id, direction) WHERE outcome = 'matched';
"""

# Statement-level triggers with transition tables: one UPDATE of the round per statement,
# however many payments it touched (payment creation inserts 100,000 rows in one go), so
# the code changes payments in set-based statements. Changes that keep the sum (sent,
# paid, failed, returned) do not touch the round row at all, so bank callbacks never queue
# on it.
COMMITTED = """
CREATE FUNCTION payment_committed_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE payment_round r SET committed = r.committed + d.delta
    FROM (SELECT round_id, sum(amount) AS delta FROM new_rows WHERE status <> 'cancelled' GROUP BY round_id) d
    WHERE r.id = d.round_id AND d.delta <> 0;
    RETURN NULL;
END $$;

CREATE FUNCTION payment_committed_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- Old rows count out, new rows count in; no join of the two transition tables needed.
    UPDATE payment_round r SET committed = r.committed + d.delta
    FROM (
        SELECT round_id, sum(live) AS delta FROM (
            SELECT round_id, CASE WHEN status <> 'cancelled' THEN amount ELSE 0 END AS live FROM new_rows
            UNION ALL
            SELECT round_id, CASE WHEN status <> 'cancelled' THEN -amount ELSE 0 END FROM old_rows
        ) x
        GROUP BY round_id
    ) d
    WHERE r.id = d.round_id AND d.delta <> 0;
    RETURN NULL;
END $$;

CREATE FUNCTION payment_committed_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE payment_round r SET committed = r.committed - d.delta
    FROM (SELECT round_id, sum(amount) AS delta FROM old_rows WHERE status <> 'cancelled' GROUP BY round_id) d
    WHERE r.id = d.round_id AND d.delta <> 0;
    RETURN NULL;
END $$;

CREATE TRIGGER payment_committed_insert AFTER INSERT ON payment
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION payment_committed_insert();
CREATE TRIGGER payment_committed_update AFTER UPDATE ON payment
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION payment_committed_update();
CREATE TRIGGER payment_committed_delete AFTER DELETE ON payment
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION payment_committed_delete();
"""

ALLOCATED = """
CREATE FUNCTION round_allocation(status text, ceiling bigint, committed bigint) RETURNS bigint
    LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE status WHEN 'cancelled' THEN 0 WHEN 'closed' THEN committed ELSE ceiling END
$$;

CREATE FUNCTION round_allocated() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    before_ bigint := 0;
    after_ bigint := 0;
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        before_ := round_allocation(OLD.status, OLD.ceiling, OLD.committed);
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        after_ := round_allocation(NEW.status, NEW.ceiling, NEW.committed);
    END IF;
    IF TG_OP = 'UPDATE' AND (OLD.programme_code, OLD.year) IS DISTINCT FROM (NEW.programme_code, NEW.year) THEN
        RAISE EXCEPTION 'a round never moves to another budget' USING ERRCODE = 'check_violation';
    END IF;
    IF after_ <> before_ THEN
        UPDATE programme_budget SET allocated = allocated + after_ - before_
        WHERE programme_code = coalesce(NEW.programme_code, OLD.programme_code) AND year = coalesce(NEW.year, OLD.year);
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER round_allocated AFTER INSERT OR DELETE OR UPDATE OF status, ceiling, committed, programme_code, year ON payment_round
    FOR EACH ROW EXECUTE FUNCTION round_allocated();
"""

# The domain programmes (shared/domain/README.md), as this service pays them. Provincial
# programmes exclude one another ("no double provincial aid"); everything here is data,
# edited through PUT /v1/programmes/{code}.
SEED = """
INSERT INTO programme (code, name, provincial, exclusive_with, default_channel) VALUES
    ('PKH_PLUS', 'PKH Plus Jawa Timur', true, '{ASPD,BLT_DBHCHT}', 'bank'),
    ('ASPD', 'Asistensi Sosial Penyandang Disabilitas (ASPD)', true, '{PKH_PLUS,BLT_DBHCHT}', 'bank'),
    ('BLT_DBHCHT', 'BLT DBHCHT', true, '{PKH_PLUS,ASPD}', 'bank'),
    ('PKE', 'Penanganan Kemiskinan Ekstrem (PKE)', false, '{}', 'bank'),
    ('KUBE', 'Kelompok Usaha Bersama (KUBE)', false, '{}', 'post');
"""


def _statements(sql: str) -> list[str]:
    """Split a script at the semicolons that end statements (not those inside $$ bodies):
    the driver runs one statement at a time."""
    out, current = [], []
    for line in sql.splitlines():
        current.append(line)
        if line.rstrip().endswith(";") and "\n".join(current).count("$$") % 2 == 0:
            out.append("\n".join(current).strip())
            current = []
    if "\n".join(current).strip():
        out.append("\n".join(current).strip())
    return out


def upgrade() -> None:
    for script in (TABLES, COMMITTED, ALLOCATED, SEED):
        for statement in _statements(script):
            op.execute(statement)


def downgrade() -> None:
    op.execute(
        "DROP TABLE bank_statement_line, bank_statement, post_export, bank_callback, bank_batch, payment_attempt, "
        "payment, round_entry, payment_round, programme_budget, programme, payee_enrolment, payee_person"
    )
    op.execute(
        "DROP FUNCTION payment_committed_insert(), payment_committed_update(), payment_committed_delete(), "
        "round_allocated(), round_allocation(text, bigint, bigint)"
    )
