"""Start-up checks (`manage.py check`, run by every command and the test suite)."""

from django.core import checks

from trial.audit import audited_models, has_history_page


@checks.register()
def audited_models_have_site_isolation(app_configs=None, **kwargs):
    """The audit history page shows a record only through its manager's visible_to(user)."""
    errors = []
    for model in audited_models():
        if has_history_page(model) and not hasattr(model._default_manager, "visible_to"):
            errors.append(
                checks.Error(
                    f"{model._meta.label} is audited but its default manager has no visible_to(user).",
                    hint="Add a QuerySet method visible_to(user) that applies site isolation.",
                    obj=model,
                    id="trial.E001",
                )
            )
    return errors


@checks.register()
def identifying_fields_name_their_permission(app_configs=None, **kwargs):
    """A model listing IDENTIFYING_FIELDS names the permission that unlocks them, and the fields exist."""
    from django.apps import apps

    errors = []
    for model in apps.get_models():
        fields = getattr(model, "IDENTIFYING_FIELDS", ())
        if not fields:
            continue
        if not getattr(model, "IDENTIFYING_PERMISSION", ""):
            errors.append(
                checks.Error(
                    f"{model._meta.label} lists IDENTIFYING_FIELDS but no IDENTIFYING_PERMISSION.",
                    obj=model,
                    id="trial.E007",
                )
            )
        names = {f.name for f in model._meta.get_fields()}
        for name in set(fields) - names:
            errors.append(
                checks.Error(
                    f"{model._meta.label}.IDENTIFYING_FIELDS names unknown field {name}.",
                    obj=model,
                    id="trial.E007",
                )
            )
    return errors


@checks.register()
def role_permissions_exist(app_configs=None, **kwargs):
    """Every permission a role is granted is a real permission of an installed model."""
    from django.apps import apps
    from django.contrib.auth.management import _get_all_permissions

    from trial.roles import ROLE_DEFINITIONS

    known = {
        f"{model._meta.app_label}.{codename}"
        for model in apps.get_models()
        for codename, _name in _get_all_permissions(model._meta)
    }
    return [
        checks.Error(
            f"Role {definition.role.label} is granted unknown permission {permission}.",
            obj="trial.roles",
            id="trial.E002",
        )
        for definition in ROLE_DEFINITIONS
        for permission in sorted(definition.permissions - known)
    ]


@checks.register()
def protocol_is_consistent(app_configs=None, **kwargs):
    from trial.protocol import PROTOCOL

    errors = []
    codes = [c.code for c in PROTOCOL.criteria]
    if len(codes) != len(set(codes)):
        errors.append(checks.Error("Eligibility criterion codes must be unique.", id="trial.E003"))
    rules = PROTOCOL.eligibility
    if rules.minimum_age_years < 18 or rules.pregnancy_test_window_days < 0:
        errors.append(checks.Error("Eligibility rules out of range.", obj=rules, id="trial.E004"))
    from trial.protocol import schedule_problems

    for problem in schedule_problems(PROTOCOL.schedule, PROTOCOL.unscheduled_visit):
        errors.append(checks.Error(f"Visit schedule: {problem}.", obj="trial.protocol", id="trial.E005"))
    rules = PROTOCOL.reminders
    if not (0 <= rules.send_hour_local <= 23 and 0 <= rules.coordinator_digest_hour_local <= 23):
        errors.append(checks.Error("Reminder send hours must be 0-23.", id="trial.E008"))
    if any(days <= 0 for days in rules.reminder_days_after_invitation):
        errors.append(checks.Error("Reminders come at least a day after the invitation.", id="trial.E008"))
    dosing = PROTOCOL.dosing
    if dosing.default_concentration_mg_per_ml not in dosing.concentrations_mg_per_ml:
        errors.append(checks.Error("The default STS concentration is not an allowed one.", id="trial.E006"))
    if dosing.max_volume_per_lesion_ml <= 0 or dosing.max_total_dose_per_session_mg <= 0:
        errors.append(checks.Error("Dose limits must be positive.", id="trial.E006"))
    return errors


@checks.register()
def navigation_items_resolve(app_configs=None, **kwargs):
    """Every menu item points at a page that exists and a permission that exists: a mistyped name
    would otherwise hide the item silently."""
    from django.apps import apps
    from django.contrib.auth.management import _get_all_permissions
    from django.urls import NoReverseMatch, reverse

    from trial.navigation import NAVIGATION

    known = {
        f"{model._meta.app_label}.{codename}"
        for model in apps.get_models()
        for codename, _name in _get_all_permissions(model._meta)
    }
    errors = []
    for item in NAVIGATION:
        try:
            reverse(item.url_name)
        except NoReverseMatch:
            errors.append(
                checks.Error(
                    f"Menu item {item.label} points at unknown page {item.url_name}.", id="trial.E009"
                )
            )
        if item.permission and item.permission not in known:
            errors.append(
                checks.Error(
                    f"Menu item {item.label} needs unknown permission {item.permission}.", id="trial.E009"
                )
            )
    return errors
