"""Deployment check: the key that replaces DICOM UIDs is the study's own, not SECRET_KEY."""

from django.conf import settings
from django.core import checks

MIN_KEY_LENGTH = 32


@checks.register(checks.Tags.security, deploy=True)
def dicom_uid_key_is_set(app_configs=None, **kwargs):
    """Replaced UIDs must stay the same for the life of the study (the same scanner UID maps to the
    same new UID in every upload). Derived from SECRET_KEY, they would all change the day the
    secret key is rotated, as it should be after any leak."""
    key = settings.DICOM_UID_KEY
    if not key:
        return [
            checks.Warning(
                "DICOM_UID_KEY is not set: replaced DICOM UIDs are keyed with SECRET_KEY and would all "
                "change if SECRET_KEY is rotated.",
                hint="Set DICOM_UID_KEY to a random string of at least 32 characters and keep it for the "
                "life of the study (back it up with the database).",
                id="lesions.W001",
            )
        ]
    if len(key) < MIN_KEY_LENGTH:
        return [
            checks.Warning(
                f"DICOM_UID_KEY is shorter than {MIN_KEY_LENGTH} characters.",
                hint="Use a random string of at least 32 characters.",
                id="lesions.W002",
            )
        ]
    return []
