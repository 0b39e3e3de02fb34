"""The lock reason, and the lock guard extended to screening, eligibility, consent and
questionnaire responses (see trial/data_management/locks_sql.py). The SQL is copied here, not
imported, so this migration keeps meaning what it meant when it ran."""

import pgtrigger.compiler
import pgtrigger.migrations
from django.db import migrations, models

NEW_TABLES = {
    "participants_screening": ("", "", "id"),
    "participants_eligibilityassessment": ("", "", "screening_id"),
    "participants_consentrecord": ("", "", "screening_id"),
    "participants_consentwithdrawal": ("", "", "screening_id"),
    "pro_measures_response": ("", "", "", "invitation_id"),
    "pro_measures_score": ("", "", "", "", "response_id"),
}

# Arguments: visit, participant, screening, invitation and response columns ('' or absent: none).
# The triggers of 0004 pass two arguments and keep their meaning.
FUNCTION_SQL = """
CREATE OR REPLACE FUNCTION edc_refuse_locked() RETURNS TRIGGER AS $$
DECLARE
    visit_column TEXT := COALESCE(TG_ARGV[0], '');
    participant_column TEXT := COALESCE(TG_ARGV[1], '');
    screening_column TEXT := COALESCE(TG_ARGV[2], '');
    invitation_column TEXT := COALESCE(TG_ARGV[3], '');
    response_column TEXT := COALESCE(TG_ARGV[4], '');
    images JSONB[];
    image JSONB;
    visit BIGINT;
    participant BIGINT;
    invitation BIGINT;
BEGIN
    IF TG_OP = 'DELETE' THEN
        images := ARRAY[to_jsonb(OLD)];
    ELSIF TG_OP = 'UPDATE' THEN
        images := ARRAY[to_jsonb(OLD), to_jsonb(NEW)];
    ELSE
        images := ARRAY[to_jsonb(NEW)];
    END IF;
    FOREACH image IN ARRAY images LOOP
        visit := NULL;
        participant := NULL;
        invitation := NULL;
        IF visit_column <> '' THEN
            visit := (image ->> visit_column)::BIGINT;
        END IF;
        IF participant_column <> '' THEN
            participant := (image ->> participant_column)::BIGINT;
        END IF;
        IF screening_column <> '' THEN
            SELECT p.id INTO participant FROM participants_participant p
             WHERE p.screening_id = (image ->> screening_column)::BIGINT;
        END IF;
        IF response_column <> '' THEN
            SELECT r.invitation_id INTO invitation FROM pro_measures_response r
             WHERE r.id = (image ->> response_column)::BIGINT;
        ELSIF invitation_column <> '' THEN
            invitation := (image ->> invitation_column)::BIGINT;
        END IF;
        IF invitation IS NOT NULL THEN
            SELECT i.visit_id, i.participant_id INTO visit, participant FROM pro_measures_invitation i
             WHERE i.id = invitation;
        END IF;
        IF participant IS NULL AND visit IS NOT NULL THEN
            SELECT v.participant_id INTO participant FROM participants_visit v WHERE v.id = visit;
        END IF;
        IF EXISTS (
            SELECT 1 FROM data_management_datalock l
            WHERE l.released_at IS NULL
              AND (l.scope = 'study'
                   OR (l.scope = 'participant' AND l.participant_id = participant)
                   OR (l.scope = 'visit' AND l.visit_id = visit))
        ) THEN
            RAISE EXCEPTION 'locked data: % refuses % (participant %, visit %)',
                TG_TABLE_NAME, TG_OP, participant, visit
                USING ERRCODE = 'EL001';
        END IF;
    END LOOP;
    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;
"""

# 0004's function, restored on the way back.
PREVIOUS_FUNCTION_SQL = (
    FUNCTION_SQL.replace("COALESCE(TG_ARGV[2], '')", "''")
    .replace("COALESCE(TG_ARGV[3], '')", "''")
    .replace("COALESCE(TG_ARGV[4], '')", "''")
)


def _install():
    statements = [FUNCTION_SQL]
    for table, arguments in NEW_TABLES.items():
        quoted = ", ".join(f"'{a}'" for a in arguments)
        statements.append(
            f"CREATE TRIGGER edc_lock_guard BEFORE INSERT OR UPDATE OR DELETE ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION edc_refuse_locked({quoted});"
        )
    return statements


def _uninstall():
    return [f"DROP TRIGGER IF EXISTS edc_lock_guard ON {table};" for table in NEW_TABLES] + [
        PREVIOUS_FUNCTION_SQL
    ]


class Migration(migrations.Migration):
    dependencies = [
        ("data_management", "0004_lock_triggers"),
        ("participants", "0004_consent_version_characters"),
        ("pro_measures", "0001_initial"),
    ]

    operations = [
        pgtrigger.migrations.RemoveTrigger(
            model_name="datalock",
            name="insert_insert",
        ),
        pgtrigger.migrations.RemoveTrigger(
            model_name="datalock",
            name="update_update",
        ),
        pgtrigger.migrations.RemoveTrigger(
            model_name="datalock",
            name="delete_delete",
        ),
        migrations.AddField(
            model_name="datalock",
            name="reason",
            field=models.CharField(
                blank=True,
                help_text="Shown on every page of the locked data, e.g. 'Database lock for the interim analysis'.",
                max_length=300,
                verbose_name="why locked",
            ),
        ),
        migrations.AddField(
            model_name="datalockevent",
            name="reason",
            field=models.CharField(
                blank=True,
                help_text="Shown on every page of the locked data, e.g. 'Database lock for the interim analysis'.",
                max_length=300,
                verbose_name="why locked",
            ),
        ),
        pgtrigger.migrations.AddTrigger(
            model_name="datalock",
            trigger=pgtrigger.compiler.Trigger(
                name="insert_insert",
                sql=pgtrigger.compiler.UpsertTriggerSql(
                    func='INSERT INTO "data_management_datalockevent" ("id", "locked_at", "locked_by_id", "participant_id", "pgh_context", "pgh_context_id", "pgh_created_at", "pgh_label", "pgh_obj_id", "reason", "release_reason", "released_at", "released_by_id", "scope", "visit_id") VALUES (NEW."id", NEW."locked_at", NEW."locked_by_id", NEW."participant_id", COALESCE(NULLIF(CURRENT_SETTING(\'pghistory.context_metadata\', TRUE), \'\'), NULL)::JSONB, COALESCE(NULLIF(CURRENT_SETTING(\'pghistory.context_id\', TRUE), \'\'), NULL)::UUID, NOW(), \'insert\', NEW."id", NEW."reason", NEW."release_reason", NEW."released_at", NEW."released_by_id", NEW."scope", NEW."visit_id"); RETURN NULL;',
                    hash="52221e5a2e140bffac0471742ee4ffbe82e62eaf",
                    operation="INSERT",
                    pgid="pgtrigger_insert_insert_c3ca0",
                    table="data_management_datalock",
                    when="AFTER",
                ),
            ),
        ),
        pgtrigger.migrations.AddTrigger(
            model_name="datalock",
            trigger=pgtrigger.compiler.Trigger(
                name="update_update",
                sql=pgtrigger.compiler.UpsertTriggerSql(
                    condition="WHEN (OLD.* IS DISTINCT FROM NEW.*)",
                    func='INSERT INTO "data_management_datalockevent" ("id", "locked_at", "locked_by_id", "participant_id", "pgh_context", "pgh_context_id", "pgh_created_at", "pgh_label", "pgh_obj_id", "reason", "release_reason", "released_at", "released_by_id", "scope", "visit_id") VALUES (NEW."id", NEW."locked_at", NEW."locked_by_id", NEW."participant_id", COALESCE(NULLIF(CURRENT_SETTING(\'pghistory.context_metadata\', TRUE), \'\'), NULL)::JSONB, COALESCE(NULLIF(CURRENT_SETTING(\'pghistory.context_id\', TRUE), \'\'), NULL)::UUID, NOW(), \'update\', NEW."id", NEW."reason", NEW."release_reason", NEW."released_at", NEW."released_by_id", NEW."scope", NEW."visit_id"); RETURN NULL;',
                    hash="df96df05bf2c48d491bc56f9997dc95553ae9ae7",
                    operation="UPDATE",
                    pgid="pgtrigger_update_update_485af",
                    table="data_management_datalock",
                    when="AFTER",
                ),
            ),
        ),
        pgtrigger.migrations.AddTrigger(
            model_name="datalock",
            trigger=pgtrigger.compiler.Trigger(
                name="delete_delete",
                sql=pgtrigger.compiler.UpsertTriggerSql(
                    func='INSERT INTO "data_management_datalockevent" ("id", "locked_at", "locked_by_id", "participant_id", "pgh_context", "pgh_context_id", "pgh_created_at", "pgh_label", "pgh_obj_id", "reason", "release_reason", "released_at", "released_by_id", "scope", "visit_id") VALUES (OLD."id", OLD."locked_at", OLD."locked_by_id", OLD."participant_id", COALESCE(NULLIF(CURRENT_SETTING(\'pghistory.context_metadata\', TRUE), \'\'), NULL)::JSONB, COALESCE(NULLIF(CURRENT_SETTING(\'pghistory.context_id\', TRUE), \'\'), NULL)::UUID, NOW(), \'delete\', OLD."id", OLD."reason", OLD."release_reason", OLD."released_at", OLD."released_by_id", OLD."scope", OLD."visit_id"); RETURN NULL;',
                    hash="a4ea63ee3f3874a9404cb767bd22cdc3e0ef15bc",
                    operation="DELETE",
                    pgid="pgtrigger_delete_delete_dbf63",
                    table="data_management_datalock",
                    when="AFTER",
                ),
            ),
        ),
        migrations.RunSQL(sql=_install(), reverse_sql=_uninstall()),
    ]
