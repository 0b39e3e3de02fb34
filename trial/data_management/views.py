"""Query pages: the list (per site, per participant, by state), one query with its answer,
close and re-open forms, and the raise form for one record."""

from __future__ import annotations

from django.apps import apps
from django.contrib import messages
from django.contrib.auth.mixins import PermissionRequiredMixin
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.utils.functional import cached_property
from django.utils.translation import gettext as _
from django.views.generic import FormView, TemplateView, View

from participants.models import Participant, Visit
from participants.visits import site_today
from trial.data_management import locking, services, verification
from trial.data_management.forms import (
    LockReasonForm,
    QueryAnswerForm,
    QueryFilterForm,
    QueryRaiseForm,
    QueryReopenForm,
)
from trial.data_management.models import DataLock, LockScope, Query, QueryState
from trial.locks import lock_message
from trial.pagination import PAGE_SIZE, list_page


def _form_error(form, exc: ValidationError) -> None:
    if hasattr(exc, "error_dict"):
        for field, errors in exc.error_dict.items():
            form.add_error(field if field in form.fields else None, errors)
    else:
        form.add_error(None, exc)


QUERY_PAGE_SIZE = PAGE_SIZE


class QueryListView(PermissionRequiredMixin, TemplateView):
    """Queries of the sites the user may see (the current site's when one is chosen), or of one
    participant (`?participant=`), filtered by state, newest first, a page at a time (`?page=`,
    filters kept). A count and one page, however many rows."""

    permission_required = "data_management.view_query"
    template_name = "data_management/query_list.html"

    def get_context_data(self, **kwargs):
        form = QueryFilterForm(self.request.GET or None)
        state, participant_id = "", None
        if form.is_valid():
            state, participant_id = form.cleaned_data["state"], form.cleaned_data["participant"]
        queries = Query.objects.visible_to(self.request.user).for_lists()
        participant = None
        if participant_id:
            participant = get_object_or_404(
                Participant.objects.visible_to(self.request.user), pk=participant_id
            )
            queries = queries.filter(participant=participant)
        elif getattr(self.request, "site", None) is not None:
            queries = queries.filter(participant__site=self.request.site)
        if state == "":
            queries = queries.unresolved()
        elif state != "all":
            queries = queries.filter(state=state)
        page = list_page(queries, query=self.request.GET, per_page=QUERY_PAGE_SIZE, fragment="query-list")
        todays: dict[int, object] = {}
        for query in page:
            site = query.participant.site
            if site.pk not in todays:
                todays[site.pk] = site_today(site)
            query.age = query.age_days(on=todays[site.pk])
        return super().get_context_data(
            form=form, queries=page, participant=participant, state=state, **kwargs
        )


class QueryDetailView(PermissionRequiredMixin, TemplateView):
    permission_required = "data_management.view_query"
    template_name = "data_management/query_detail.html"

    @cached_property
    def query(self) -> Query:
        return get_object_or_404(
            Query.objects.visible_to(self.request.user).for_lists(), pk=self.kwargs["pk"]
        )

    def can_answer(self) -> bool:
        return (
            self.request.user.has_perm("data_management.answer_query") and self.query.state == QueryState.OPEN
        )

    def can_close(self) -> bool:
        return (
            self.request.user.has_perm("data_management.raise_query")
            and self.query.state != QueryState.CLOSED
        )

    def can_reopen(self) -> bool:
        return (
            self.request.user.has_perm("data_management.raise_query") and self.query.state != QueryState.OPEN
        )

    def get_context_data(self, **kwargs):
        query = self.query
        record = query.record
        kwargs.setdefault("answer_form", QueryAnswerForm() if self.can_answer() else None)
        kwargs.setdefault("reopen_form", QueryReopenForm() if self.can_reopen() else None)
        return super().get_context_data(
            query=query,
            record=record,
            record_url=record.get_absolute_url() if hasattr(record, "get_absolute_url") else "",
            current_value=getattr(record, query.field_name, None) if query.field_name else None,
            age=query.age_days(on=site_today(query.participant.site)),
            can_close=self.can_close(),
            **kwargs,
        )

    def post(self, request, *args, **kwargs):
        action = request.POST.get("action")
        try:
            if action == "answer":
                if not self.can_answer():
                    raise PermissionDenied
                form = QueryAnswerForm(request.POST)
                if not form.is_valid():
                    return self.render_to_response(self.get_context_data(answer_form=form))
                services.query_answer(actor=request.user, query=self.query, **form.cleaned_data)
                messages.success(request, _("Answer sent."))
            elif action == "close":
                if not self.can_close():
                    raise PermissionDenied
                services.query_close(actor=request.user, query=self.query)
                messages.success(request, _("Query closed."))
            elif action == "reopen":
                if not self.can_reopen():
                    raise PermissionDenied
                form = QueryReopenForm(request.POST)
                if not form.is_valid():
                    return self.render_to_response(self.get_context_data(reopen_form=form))
                services.query_reopen(actor=request.user, query=self.query, text=form.cleaned_data["text"])
                messages.success(request, _("Query re-opened."))
            else:  # not one of the page's buttons: say so rather than "forbidden"
                raise ValidationError(_("Choose one of the page's buttons: answer, close or re-open."))
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
        return redirect(self.query.get_absolute_url())


def clinical_model(label: str):
    """The clinical model named `app_label.model` (a participant's records only), else 404."""
    try:
        model = apps.get_model(label)
    except (LookupError, ValueError):
        raise Http404 from None
    if model not in services.queryable_models():
        raise Http404
    return model


class RecordPageMixin:
    """The clinical record of the URL (`<app_label.model>/<id>/`), if the user's sites include
    its participant's (else 404)."""

    @cached_property
    def model(self):
        return clinical_model(self.kwargs["model_label"])

    @cached_property
    def record(self):
        return get_object_or_404(
            self.model.objects.visible_to(self.request.user), pk=self.kwargs["object_id"]
        )


class QueryRaiseView(PermissionRequiredMixin, RecordPageMixin, FormView):
    """Raise a query on one record: `/queries/new/<app_label.model>/<id>/`."""

    permission_required = "data_management.raise_query"
    template_name = "data_management/query_raise.html"
    form_class = QueryRaiseForm

    @cached_property
    def participant(self) -> Participant:
        return services.record_participant_and_visit(self.record)[0]

    def get_form_kwargs(self):
        hidden = frozenset(getattr(self.model, "IDENTIFYING_FIELDS", ()))
        field_choices = [
            (f.name, str(f.verbose_name).capitalize())
            for f in self.model._meta.concrete_fields
            if not f.primary_key and f.editable and f.name not in hidden and not f.is_relation
        ]
        return {
            **super().get_form_kwargs(),
            "field_choices": field_choices,
            "assignees": services.coordinators_of(self.participant.site).order_by("email"),
            "initial": {"field_name": self.request.GET.get("field", "")},
        }

    def get_context_data(self, **kwargs):
        return super().get_context_data(
            record=self.record,
            form_label=self.model._meta.verbose_name,
            participant=self.participant,
            open_queries=list(
                Query.objects.filter(
                    content_type__app_label=self.model._meta.app_label,
                    content_type__model=self.model._meta.model_name,
                    object_id=self.record.pk,
                ).unresolved()
            ),
            **kwargs,
        )

    def form_valid(self, form):
        try:
            query = services.query_raise(
                actor=self.request.user,
                record=self.record,
                field_name=form.cleaned_data["field_name"],
                text=form.cleaned_data["text"],
                suggested_value=form.cleaned_data["suggested_value"],
                assignee=form.cleaned_data["assignee"],
            )
        except ValidationError as exc:
            _form_error(form, exc)
            return self.form_invalid(form)
        messages.success(self.request, _("Query %(query)s raised.") % {"query": query})
        return redirect(query.get_absolute_url())


# --- Source data verification -----------------------------------------------------------------


class VerificationView(PermissionRequiredMixin, TemplateView):
    """The verification status of a visit (`/visits/<pk>/verification/`) or of a participant
    (`/participants/<pk>/verification/`), and for monitors the one-click "mark verified"."""

    permission_required = "data_management.view_verification"
    template_name = "data_management/verification.html"
    scope = "visit"

    @cached_property
    def target(self):
        model = Visit if self.scope == "visit" else Participant
        return get_object_or_404(
            model.objects.visible_to(self.request.user).select_related(
                "participant__site" if model is Visit else "site"
            ),
            pk=self.kwargs["pk"],
        )

    def scope_kwargs(self) -> dict:
        return {self.scope: self.target}

    def get_context_data(self, **kwargs):
        participant = self.target.participant if self.scope == "visit" else self.target
        lock = locking.active_lock_for(**self.scope_kwargs())
        forms = verification.visit_forms_status(self.target) if self.scope == "visit" else []
        for row in forms:
            label = f"{row.model._meta.app_label}.{row.model._meta.model_name}"
            row.label_key = label
            row.record_urls = [
                (pk, reverse("data_management:record-verification", args=[label, pk]))
                for pk in row.record_ids
            ]
        return super().get_context_data(
            target=self.target,
            scope=self.scope,
            participant=participant,
            forms=forms,
            status=verification.latest_verification_status(**self.scope_kwargs()),
            can_verify=self.request.user.has_perm("data_management.verify_source"),
            lock=lock,
            lock_message=lock_message(lock) if lock else "",
            can_lock=self.request.user.has_perm("data_management.manage_locks"),
            **kwargs,
        )

    def post(self, request, *args, **kwargs):
        if not request.user.has_perm("data_management.verify_source"):
            raise PermissionDenied
        try:
            form = request.POST.get("form")
            if form and self.scope == "visit":
                model = clinical_model(form)
                verification.form_verification_record(actor=request.user, model=model, visit=self.target)
            else:
                verification.verification_record(actor=request.user, **self.scope_kwargs())
            messages.success(request, _("Marked as source-verified."))
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
        return redirect(request.path)


class RecordVerificationView(PermissionRequiredMixin, RecordPageMixin, TemplateView):
    """One form (record) at `/verification/<app_label.model>/<id>/`: who verified it and when,
    field by field, with what changed since marked; monitors verify the whole form or chosen fields."""

    permission_required = "data_management.view_verification"
    template_name = "data_management/record_verification.html"

    def get_context_data(self, **kwargs):
        record = self.record
        participant, visit = services.record_participant_and_visit(record)
        return super().get_context_data(
            record=record,
            form_label=str(self.model._meta.verbose_name).capitalize(),
            record_url=record.get_absolute_url() if hasattr(record, "get_absolute_url") else "",
            participant=participant,
            visit=visit,
            status=verification.record_status(record),
            can_verify=self.request.user.has_perm("data_management.verify_source"),
            **kwargs,
        )

    def post(self, request, *args, **kwargs):
        if not request.user.has_perm("data_management.verify_source"):
            raise PermissionDenied
        action = request.POST.get("action") or "form"
        if action not in ("form", "fields"):
            messages.error(request, _("Choose one of the page's buttons."))
            return redirect(request.path)
        fields = request.POST.getlist("field") if action == "fields" else []
        if action == "fields" and not fields:
            messages.error(request, _("Choose the fields you compared with the source."))
            return redirect(request.path)
        try:
            verification.form_verification_record(
                actor=request.user, model=self.model, record=self.record, field_names=fields
            )
            messages.success(request, _("Marked as source-verified."))
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
        return redirect(request.path)


# --- Locks ------------------------------------------------------------------------------------


class LockListView(PermissionRequiredMixin, TemplateView):
    """Locks in force and released (with who and why); data managers lock the study and
    unlock here. Visits and participants are locked from their verification pages."""

    permission_required = "data_management.view_datalock"
    template_name = "data_management/lock_list.html"

    def get_context_data(self, **kwargs):
        locks = list(
            DataLock.objects.visible_to(self.request.user).select_related(
                "participant", "visit__participant", "locked_by", "released_by"
            )[:200]
        )
        return super().get_context_data(
            locks=locks,
            can_manage=self.request.user.has_perm("data_management.manage_locks"),
            study_locked=any(lock.is_active and lock.scope == LockScope.STUDY for lock in locks),
            **kwargs,
        )


class LockCreateView(PermissionRequiredMixin, View):
    """POST scope=visit|participant|study and the id: lock, then back to where it was asked.
    A scope or id that names nothing is a 404; a reason the lock cannot keep is refused."""

    permission_required = "data_management.manage_locks"

    def post(self, request):
        scope = request.POST.get("scope")
        kwargs = {}
        if scope == LockScope.VISIT:
            kwargs["visit"] = get_object_or_404(
                Visit.objects.visible_to(request.user), pk=_record_id(request.POST.get("id"))
            )
        elif scope == LockScope.PARTICIPANT:
            kwargs["participant"] = get_object_or_404(
                Participant.objects.visible_to(request.user), pk=_record_id(request.POST.get("id"))
            )
        elif scope != LockScope.STUDY:
            raise Http404
        back = HttpResponseRedirect(
            url_has_allowed_host_and_scheme_or(request, reverse("data_management:lock-list"))
        )
        form = LockReasonForm(request.POST)
        if not form.is_valid():
            messages.error(request, form.problem())
            return back
        try:
            locking.lock_create(actor=request.user, reason=form.cleaned_data["reason"], **kwargs)
            messages.success(request, _("Locked."))
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
        return back


class LockReleaseView(PermissionRequiredMixin, View):
    permission_required = "data_management.manage_locks"

    def post(self, request, pk):
        lock = get_object_or_404(DataLock.objects.visible_to(request.user), pk=pk)
        form = LockReasonForm(request.POST, required=True)
        if not form.is_valid():
            messages.error(request, form.problem())
            return redirect("data_management:lock-list")
        try:
            locking.lock_release(actor=request.user, lock=lock, reason=form.cleaned_data["reason"])
            messages.success(request, _("Unlocked."))
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
        return redirect("data_management:lock-list")


def _record_id(value) -> int:
    """The primary key a hidden field names; a value that cannot be one names nothing (404)."""
    try:
        pk = int(value)
    except (TypeError, ValueError):
        raise Http404 from None
    if not 0 < pk < 2**63:
        raise Http404
    return pk


def url_has_allowed_host_and_scheme_or(request, fallback: str) -> str:
    """The `next` field if it is a path on this site, else `fallback`."""
    from django.utils.http import url_has_allowed_host_and_scheme

    target = request.POST.get("next", "")
    # A path only: `redirect()` would take any other word for the name of a view.
    if target.startswith("/") and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        return target
    return fallback
