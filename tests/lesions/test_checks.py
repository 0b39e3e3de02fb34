"""`check --deploy` warns when replaced DICOM UIDs would change with a rotated SECRET_KEY."""

from django.test import override_settings

from lesions.checks import dicom_uid_key_is_set
from lesions.dicom.services import uid_key


def test_a_missing_or_short_uid_key_is_a_deployment_warning():
    with override_settings(DICOM_UID_KEY=""):
        assert [w.id for w in dicom_uid_key_is_set()] == ["lesions.W001"]
    with override_settings(DICOM_UID_KEY="short"):
        assert [w.id for w in dicom_uid_key_is_set()] == ["lesions.W002"]
    with override_settings(DICOM_UID_KEY="s" * 32):
        assert dicom_uid_key_is_set() == []


def test_with_its_own_key_uids_survive_a_secret_key_rotation():
    with override_settings(DICOM_UID_KEY="study-key-" + "x" * 30, SECRET_KEY="first-" + "a" * 50):
        before = uid_key()
    with override_settings(DICOM_UID_KEY="study-key-" + "x" * 30, SECRET_KEY="rotated-" + "b" * 50):
        assert uid_key() == before
    with override_settings(DICOM_UID_KEY="", SECRET_KEY="rotated-" + "b" * 50):
        assert uid_key() != before
