"""PostgreSQL triggers that make locked data read-only (see trial/data_management/locks_sql.py).

The SQL is copied here, not imported, so this migration keeps meaning what it meant when it ran."""

from django.db import migrations

LOCKED_TABLES = {
    "participants_participant": ("", "id"),
    "participants_visit": ("id", "participant_id"),
    "participants_pregnancytest": ("visit_id", "participant_id"),
    "participants_adverseevent": ("reported_at_visit_id", "participant_id"),
    "participants_aereview": ("visit_id", ""),
    "participants_protocoldeviation": ("", "participant_id"),
    "lesions_lesion": ("", "participant_id"),
    "lesions_dicomfile": ("visit_id", ""),
    "lesions_ultrasoundmeasurement": ("visit_id", ""),
    "lesions_injection": ("visit_id", ""),
}

FUNCTION_SQL = """
CREATE OR REPLACE FUNCTION edc_refuse_locked() RETURNS TRIGGER AS $$
DECLARE
    visit_column TEXT := TG_ARGV[0];
    participant_column TEXT := TG_ARGV[1];
    images JSONB[];
    image JSONB;
    visit BIGINT;
    participant BIGINT;
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
        IF visit_column <> '' THEN
            visit := (image ->> visit_column)::BIGINT;
        END IF;
        IF participant_column <> '' THEN
            participant := (image ->> participant_column)::BIGINT;
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


def _install():
    statements = [FUNCTION_SQL]
    for table, (visit_column, participant_column) in LOCKED_TABLES.items():
        statements.append(
            f"CREATE TRIGGER edc_lock_guard BEFORE INSERT OR UPDATE OR DELETE ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION edc_refuse_locked('{visit_column}', '{participant_column}');"
        )
    return statements


def _uninstall():
    return [f"DROP TRIGGER IF EXISTS edc_lock_guard ON {table};" for table in LOCKED_TABLES] + [
        "DROP FUNCTION IF EXISTS edc_refuse_locked();"
    ]


class Migration(migrations.Migration):
    dependencies = [
        ("data_management", "0003_locks"),
        ("participants", "0004_consent_version_characters"),
        ("lesions", "0002_dicom_files_and_measurement_provenance"),
    ]

    operations = [migrations.RunSQL(sql=_install(), reverse_sql=_uninstall())]
