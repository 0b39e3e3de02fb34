"""The roles of the trial and what each may do.

A role is a Django group whose permissions are declared here, in code a reviewer can read; the
groups follow this table after every migrate (`roles_sync`). A user's role applies at each of
their sites; `view_all_sites` lets a role see every site.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import models
from django.utils.translation import gettext_lazy as _


class Role(models.TextChoices):
    COORDINATOR = "coordinator", _("Research coordinator")
    INVESTIGATOR = "investigator", _("Investigator")
    MONITOR = "monitor", _("Monitor")
    DATA_MANAGER = "data_manager", _("Data manager")
    ADMINISTRATOR = "administrator", _("Administrator")


@dataclass(frozen=True)
class RoleDefinition:
    role: Role
    permissions: frozenset[str]  # "app_label.codename"

    @property
    def group_name(self) -> str:
        return str(self.role.label)


# Clinical permissions by app. Monitors and data managers read without identifying data.
_SCREENING_READ = frozenset(
    {
        "participants.view_screening",
        "participants.view_eligibilityassessment",
        "participants.view_consentdocument",
        "participants.view_consentrecord",
        "participants.view_consentwithdrawal",
        "participants.view_participant",
        "participants.view_visit",
        "participants.view_pregnancytest",
        "participants.view_adverseevent",
        "participants.view_aereview",
        "participants.view_protocoldeviation",
        "lesions.view_lesion",
        "lesions.view_ultrasoundmeasurement",
        "lesions.view_injection",
        "lesions.view_dicomfile",
        "pro_measures.view_invitation",
        "pro_measures.view_response",
        "pro_measures.view_score",
        "reports.view_visitreport",
        "signatures.view_signature",
        "data_management.view_query",
        "data_management.view_verification",
        "data_management.view_datalock",
    }
)
_SCREENING_WRITE = frozenset(
    {
        "participants.view_identifying_data",
        "participants.add_screening",
        "participants.change_screening",
        "participants.change_eligibilityassessment",
        "participants.add_consentrecord",
        "participants.add_consentwithdrawal",
        "participants.enroll_participant",
        "participants.change_participant",
        "participants.change_visit",
        "participants.add_pregnancytest",
        "participants.add_adverseevent",
        "participants.change_adverseevent",
        "participants.add_aereview",
        "participants.add_protocoldeviation",
        "lesions.add_lesion",
        "lesions.change_lesion",
        "lesions.add_ultrasoundmeasurement",
        "lesions.change_ultrasoundmeasurement",
        "lesions.add_injection",
        "lesions.change_injection",
        "lesions.add_dicomfile",
        "lesions.review_dicom_pixels",
        "pro_measures.change_invitation",
        "pro_measures.add_response",
        "reports.add_visitreport",
        "data_management.answer_query",
    }
)

# Apps add their permissions here as their models land.
ROLE_DEFINITIONS: tuple[RoleDefinition, ...] = (
    RoleDefinition(Role.COORDINATOR, frozenset({"trial.view_site"}) | _SCREENING_READ | _SCREENING_WRITE),
    RoleDefinition(
        Role.INVESTIGATOR,
        frozenset(
            {
                "trial.view_site",
                "participants.confirm_eligibility",
                "participants.manage_consent_documents",
                "signatures.sign_visit",
                "exports.export_data",
            }
        )
        | _SCREENING_READ
        | _SCREENING_WRITE,
    ),
    RoleDefinition(
        Role.MONITOR, frozenset(
            {
                "trial.view_site",
                "data_management.raise_query",
                "data_management.verify_source",
                "exports.export_data",
            }
        )
        | _SCREENING_READ
    ),
    RoleDefinition(
        Role.DATA_MANAGER,
        frozenset(
            {
                "trial.view_site",
                "trial.view_all_sites",
                "participants.manage_consent_documents",
                "data_management.raise_query",
                "data_management.manage_locks",
                "exports.export_data",
            }
        )
        | _SCREENING_READ,
    ),
    RoleDefinition(
        Role.ADMINISTRATOR,
        frozenset(
            {
                "trial.view_site",
                "trial.add_site",
                "trial.change_site",
                "trial.view_all_sites",
                "trial.manage_users",
                "trial.view_user",
                "trial.view_outbox",
            }
        ),
    ),
)


def definition_for(role: Role) -> RoleDefinition:
    return next(d for d in ROLE_DEFINITIONS if d.role == role)


def roles_sync(*, using: str = "default") -> None:
    """Make each role's group hold exactly the permissions declared above (idempotent)."""
    from django.contrib.auth.models import Group, Permission

    for definition in ROLE_DEFINITIONS:
        group, _created = Group.objects.using(using).get_or_create(name=definition.group_name)
        wanted = set()
        for dotted in definition.permissions:
            app_label, codename = dotted.split(".", 1)
            wanted.update(
                Permission.objects.using(using)
                .filter(content_type__app_label=app_label, codename=codename)
                .values_list("pk", flat=True)
            )
        if set(group.permissions.values_list("pk", flat=True)) != wanted:
            group.permissions.set(wanted)


def roles_sync_after_migrate(sender, using="default", **kwargs) -> None:
    # post_migrate is sent once per app; permissions of every app exist only after the last.
    from django.apps import apps

    if sender is list(apps.get_app_configs())[-1]:
        roles_sync(using=using)


def group_for(role: Role):
    from django.contrib.auth.models import Group

    return Group.objects.get(name=definition_for(role).group_name)
