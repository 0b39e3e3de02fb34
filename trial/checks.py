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
