"""Pages of the trial app: home, sites, the audit history of any record, errors and health."""

from __future__ import annotations

from django.apps import apps
from django.contrib import messages
from django.contrib.auth.decorators import login_not_required
from django.contrib.auth.mixins import PermissionRequiredMixin
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST
from django.views.generic import DetailView, ListView, TemplateView, UpdateView

from trial import services
from trial.audit import has_history_page, hidden_fields_for, record_history
from trial.forms import SiteForm
from trial.models import Site, User
from trial.sites import SESSION_KEY, sites_for


class HomeView(TemplateView):
    template_name = "trial/home.html"

    def get_context_data(self, **kwargs):
        user = self.request.user
        return super().get_context_data(roles=user.role_names(), my_sites=list(sites_for(user)), **kwargs)


@require_POST
def site_select(request):
    """The site selector: work in one of my sites, or in all of them (empty value)."""
    site_id = request.POST.get("site", "")
    if site_id == "":
        request.session.pop(SESSION_KEY, None)
    else:
        site = sites_for(request.user).filter(pk=site_id).first() if site_id.isdigit() else None
        if site is None:
            messages.error(request, _("That site is not one of yours."))
        else:
            request.session[SESSION_KEY] = site.pk
            messages.success(request, _("Now working in site %(site)s.") % {"site": site})
    next_url = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(next_url, {request.get_host()}, request.is_secure()):
        next_url = reverse("home")
    return HttpResponseRedirect(next_url)


class SiteListView(PermissionRequiredMixin, ListView):
    permission_required = "trial.view_site"
    template_name = "trial/site_list.html"
    context_object_name = "sites"

    def get_queryset(self):
        return Site.objects.visible_to(self.request.user).order_by("code")


class SiteDetailView(PermissionRequiredMixin, DetailView):
    permission_required = "trial.view_site"
    template_name = "trial/site_detail.html"
    context_object_name = "site"

    def get_queryset(self):
        return Site.objects.visible_to(self.request.user)


class SiteUpdateView(PermissionRequiredMixin, UpdateView):
    permission_required = "trial.change_site"
    template_name = "trial/site_form.html"
    form_class = SiteForm
    context_object_name = "site"

    def get_queryset(self):
        return Site.objects.visible_to(self.request.user)

    def form_valid(self, form):
        changes = form.changed_values()
        if not changes:
            messages.info(self.request, _("Nothing changed."))
            return redirect(self.object)
        try:
            site = services.site_update(
                actor=self.request.user,
                site=self.object,
                data=changes,
                reason=form.cleaned_data["reason"],
            )
        except ValidationError as exc:
            form.add_error(None, exc)
            return self.form_invalid(form)
        messages.success(self.request, _("Site %(site)s saved.") % {"site": site})
        return redirect(site)


@require_GET
def record_history_view(request, model_label: str, pk: int):
    """The audit history of one record, in plain words, for anyone who may see the record."""
    try:
        model = apps.get_model(model_label)
    except (LookupError, ValueError):
        raise Http404 from None
    if not has_history_page(model):
        raise Http404
    # Seeing a record's site is not enough: the role must be allowed to read that kind of record
    # (an administrator manages sites and users, never clinical data). Accounts are the exception:
    # everyone reads their own account's history, and User.objects.visible_to shows no other.
    permission = f"{model._meta.app_label}.view_{model._meta.model_name}"
    if model is not User and not request.user.has_perm(permission):
        raise PermissionDenied
    obj = get_object_or_404(model._default_manager.visible_to(request.user), pk=pk)
    return render(
        request,
        "trial/record_history.html",
        {
            "object": obj,
            "model_name": model._meta.verbose_name,
            "entries": record_history(obj, hidden_fields=hidden_fields_for(model, request.user)),
            "back_url": obj.get_absolute_url() if hasattr(obj, "get_absolute_url") else None,
        },
    )


@login_not_required
def csrf_failure(request, reason=""):
    return render(request, "403_csrf.html", status=403)
