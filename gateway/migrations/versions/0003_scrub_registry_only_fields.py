"""Drop registry-only personal data from webhook bodies already stored.

Before this revision the gateway stored (and delivered) every field of an event, among them
``PersonAffected.name``, ``birth_date`` and ``village_code``, and ``ReturnUnresolved.birth_date``,
which the contracts reserve for the registry. New bodies no longer carry them
(``pilar_contracts.marks.registry_only``); this removes them from the bodies kept for
retries and redeliveries. The list is fixed here on purpose: a migration must not change
with the code.

Revision ID: 0003
Revises: 0002
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

SCRUB = {
    "id.go.jatimprov.dinsos.disaster.person.affected.v1": ("name", "birth_date", "village_code"),
    "id.go.jatimprov.dinsos.homeless_return.return.unresolved.v1": ("birth_date",),
}


def upgrade() -> None:
    for ce_type, fields in SCRUB.items():
        keys = ", ".join(f"'{f}'" for f in fields)
        op.execute(
            f"""
            UPDATE webhook_deliveries
            SET body = convert_to(
                jsonb_set(convert_from(body, 'UTF8')::jsonb, '{{data}}',
                          (convert_from(body, 'UTF8')::jsonb -> 'data') - ARRAY[{keys}]::text[])::text, 'UTF8')
            WHERE ce_type = '{ce_type}'
              AND (convert_from(body, 'UTF8')::jsonb -> 'data') ?| ARRAY[{keys}]::text[]
            """
        )


def downgrade() -> None:
    pass  # what was removed is not kept anywhere
