"""Lesion pages: the participant's lesion registry with the change from baseline, adding and
correcting (or resolving) a lesion, and the measurement + injection table of a visit.

Views are thin: a form validates, one service writes (`lesions.services`), the view redirects.
A service's refusal goes back on the form next to what it is about, with the user's input kept.
Records come through `visible_to(request.user)`, so another site's record is a 404; a role
without the permission gets a 403 (checked before the record is looked up).
"""

from __future__ import annotations

import datetime as dt
import re
from functools import cached_property

from django.contrib import messages
from django.contrib.auth.mixins import PermissionRequiredMixin
from django.core.exceptions import ValidationError
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import NoReverseMatch, path, reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views import View
from django.views.generic import FormView, TemplateView

from lesions import services
from lesions.forms import (
    LesionChangeForm,
    LesionForm,
    VisitRow,
    VisitTable,
    injection_headers,
    lesion_initial,
    measurement_headers,
)
from lesions.models import Lesion
from lesions.outcomes import participant_outcome
from participants.models import Participant, ParticipantStatus, Visit, VisitStatus
from participants.visits import site_today
from trial.concurrency import CONFLICT_MESSAGE, EditConflict, conflict_rows, with_current_version
from trial.locks import ReadOnlyWhenLockedMixin, lock_in_force, lock_message, visit_locked
from trial.protocol import FORM_LABELS, PROTOCOL, Form


def _natural_key(label: str) -> list:
    """L2 before L10."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", label)]


def _safe_next(request, fallback: str) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(target, {request.get_host()}, request.is_secure()):
        return target
    return fallback


def visit_page_url(visit: Visit) -> str | None:
    """The visit page, once the participants app routes it."""
    try:
        return visit.get_absolute_url()
    except NoReverseMatch:
        return None


def _put_on_form(form, exc: ValidationError) -> None:
    if hasattr(exc, "error_dict"):
        for name, errors in exc.error_dict.items():
            form.add_error(name if name in form.fields else None, errors)
    else:
        form.add_error(None, exc)


# --- The lesion registry ----------------------------------------------------------------------


class ParticipantPageMixin(PermissionRequiredMixin):
    @cached_property
    def participant(self) -> Participant:
        return get_object_or_404(
            Participant.objects.visible_to(self.request.user).select_related("site"), pk=self.kwargs["pk"]
        )

    def lock_scope(self) -> dict:
        return {"participant": self.participant}

    @property
    def today(self) -> dt.date:
        return site_today(self.participant.site)


class LesionListView(ParticipantPageMixin, TemplateView):
    """All of a participant's lesions (resolved ones too) and the change from baseline."""

    permission_required = "lesions.view_lesion"
    template_name = "lesions/lesion_list.html"

    def get_context_data(self, **kwargs):
        participant, user = self.participant, self.request.user
        lesions = sorted(participant.lesions.all(), key=lambda lesion: _natural_key(lesion.label))
        visits = [
            visit
            for visit in participant.visits.all()
            if {Form.MEASUREMENTS, Form.INJECTIONS} & visit.definition.forms
        ]
        return super().get_context_data(
            participant=participant,
            lesions=lesions,
            visits=visits,
            outcome=participant_outcome(participant.pk),
            can_add=user.has_perm("lesions.add_lesion"),
            can_change=user.has_perm("lesions.change_lesion"),
            **kwargs,
        )


class LesionCreateView(ParticipantPageMixin, ReadOnlyWhenLockedMixin, FormView):
    permission_required = "lesions.add_lesion"
    template_name = "lesions/lesion_form.html"

    def get_form(self, form_class=None):
        return LesionForm(**self.get_form_kwargs(), participant=self.participant, today=self.today)

    def get_initial(self):
        labels = set(self.participant.lesions.values_list("label", flat=True))
        number = len(labels) + 1
        while f"L{number}" in labels:
            number += 1
        return {"label": f"L{number}", "first_seen_on": self.today}

    def form_valid(self, form):
        try:
            lesion = services.lesion_add(
                actor=self.request.user, participant=self.participant, **form.cleaned_data
            )
        except ValidationError as exc:
            _put_on_form(form, exc)
            return self.form_invalid(form)
        messages.success(self.request, _("Lesion %(lesion)s added.") % {"lesion": lesion})
        return redirect(_safe_next(self.request, lesion.get_absolute_url()))

    def get_context_data(self, **kwargs):
        return super().get_context_data(
            participant=self.participant,
            conflicts=[],
            title=_("Add a lesion"),
            submit_label=_("Add lesion"),
            next=_safe_next(self.request, ""),
            **kwargs,
        )


class LesionUpdateView(PermissionRequiredMixin, ReadOnlyWhenLockedMixin, FormView):
    """Correct a lesion or record its resolution, with a reason for change."""

    permission_required = "lesions.change_lesion"
    template_name = "lesions/lesion_form.html"

    @cached_property
    def lesion(self) -> Lesion:
        return get_object_or_404(
            Lesion.objects.visible_to(self.request.user).select_related("participant__site"),
            pk=self.kwargs["pk"],
        )

    def lock_scope(self) -> dict:
        return {"participant": self.lesion.participant}

    def get_form(self, form_class=None):
        lesion = self.lesion
        return LesionChangeForm(
            **self.get_form_kwargs(),
            participant=lesion.participant,
            today=site_today(lesion.participant.site),
            lesion=lesion,
        )

    def get_initial(self):
        return lesion_initial(self.lesion)

    def form_valid(self, form):
        changes = form.changed_values()
        if not changes:
            messages.info(self.request, _("Nothing changed."))
            return redirect(self.lesion)
        try:
            lesion = services.lesion_update(
                actor=self.request.user,
                lesion=self.lesion,
                data=changes,
                reason=form.cleaned_data["reason"],
                expected_version=form.cleaned_data["row_version"],
            )
        except EditConflict:
            return self.conflict(form)
        except ValidationError as exc:
            _put_on_form(form, exc)
            return self.form_invalid(form)
        if "resolved_on" in changes and lesion.resolved_on:
            text = _("Lesion %(label)s recorded as resolved on %(day)s.") % {
                "label": lesion.label,
                "day": lesion.resolved_on.isoformat(),
            }
        else:
            text = _("Lesion %(lesion)s saved.") % {"lesion": lesion}
        messages.success(self.request, text)
        return redirect(lesion)

    def conflict(self, form):
        """Someone saved the lesion after this form was opened: the form again with the user's
        input kept, the saved values behind it and the current version, and the message."""
        yours = form.cleaned_data
        current = Lesion.objects.select_related("participant__site").get(pk=self.lesion.pk)
        self.lesion = current
        again = LesionChangeForm(
            data=with_current_version(self.request.POST, current.row_version),
            initial=lesion_initial(current),
            participant=current.participant,
            today=site_today(current.participant.site),
            lesion=current,
        )
        again.is_valid()
        again.add_error(None, CONFLICT_MESSAGE)
        conflicts = conflict_rows(again, saved=current, yours=yours, names=LesionChangeForm.field_names)
        return self.render_to_response(self.get_context_data(form=again, conflicts=conflicts))

    def get_context_data(self, **kwargs):
        kwargs.setdefault("conflicts", [])
        return super().get_context_data(
            participant=self.lesion.participant,
            lesion=self.lesion,
            title=_("Lesion %(label)s: correct or record resolution") % {"label": self.lesion.label},
            submit_label=_("Save changes"),
            next="",
            **kwargs,
        )


# --- The measurement + injection table of a visit ---------------------------------------------


def visit_rows(lesions) -> list[VisitRow]:
    """The rows of a visit's table, in label order, from its lesions read with their records at
    the visit and their last earlier measurement (to compare with while typing)."""
    rows = [
        VisitRow(
            lesion=lesion,
            measurement=getattr(lesion, "measurement_at_visit", None),
            injection=getattr(lesion, "injection_at_visit", None),
            previous=services.previous_measurement(lesion),
        )
        for lesion in lesions
    ]
    return sorted(rows, key=lambda row: _natural_key(row.lesion.label))


class VisitLesionTableView(PermissionRequiredMixin, View):
    """One screen for a visit's lesions: measurements and (at an injection visit) injections, as
    rows; one page load, one POST, whatever the number of lesions."""

    template_name = "lesions/visit_table.html"
    read_permissions = ("lesions.view_lesion", "lesions.view_ultrasoundmeasurement", "lesions.view_injection")
    write_permissions = (
        "lesions.add_ultrasoundmeasurement",
        "lesions.change_ultrasoundmeasurement",
        "lesions.add_injection",
        "lesions.change_injection",
    )

    def get_permission_required(self):
        if self.request.method in ("GET", "HEAD"):
            return self.read_permissions
        return self.write_permissions

    @cached_property
    def visit(self) -> Visit:
        """The page's visit (a POST reads it row-locked instead: `services.visit_entry`)."""
        return get_object_or_404(
            Visit.objects.visible_to(self.request.user)
            .select_related("participant__site")
            .annotate(locked=visit_locked()),
            pk=self.kwargs["pk"],
        )

    @property
    def participant(self) -> Participant:
        return self.visit.participant

    @cached_property
    def day(self) -> dt.date:
        """The visit date once recorded, otherwise today at the site (the service's rule)."""
        return self.visit.visit_date or site_today(self.participant.site)

    @cached_property
    def forms_expected(self) -> frozenset[Form]:
        return self.visit.definition.forms

    @cached_property
    def closed_because(self) -> str | None:
        """Why nothing can be entered at this visit, or None."""
        lock = lock_in_force(visit=self.visit) if self.visit.locked else None
        if lock is not None:
            return lock_message(lock)
        if self.visit.status == VisitStatus.MISSED:
            return _("This visit was recorded as missed: nothing can be entered.")
        if (
            self.participant.status != ParticipantStatus.ON_STUDY
            and self.visit.status != VisitStatus.COMPLETED
        ):
            return _("The participant is no longer on study: nothing can be entered.")
        if not {Form.MEASUREMENTS, Form.INJECTIONS} & self.forms_expected:
            return _("This visit takes no ultrasound measurements or injections.")
        return None

    @property
    def editable(self) -> bool:
        return self.closed_because is None and self.request.user.has_perms(self.write_permissions)

    def table(self, data=None, *, lesions=None) -> VisitTable:
        """The table with `lesions` (read as `services.VisitEntry.table_lesions` reads them), or
        as saved now."""
        if lesions is None:
            lesions = services.visit_table_lesions(self.visit, self.day)
        return VisitTable(
            data,
            rows=visit_rows(lesions),
            takes_measurements=Form.MEASUREMENTS in self.forms_expected,
            takes_injections=Form.INJECTIONS in self.forms_expected,
            editable=self.editable,
        )

    def get(self, request, *args, **kwargs):
        return self.render(self.table())

    def post(self, request, *args, **kwargs):
        """Read the visit (row-locked) and its lesions once, validate the table against them and
        save it, in one transaction: nothing can change between what is checked and what is saved."""
        table_url = reverse("lesions:visit-table", args=[self.kwargs["pk"]])
        rows = None
        try:
            with services.visit_entry(actor=request.user, visit_id=self.kwargs["pk"]) as entry:
                self.visit = entry.visit
                if not self.editable:
                    messages.error(request, self.closed_because or _("You cannot change this visit."))
                    return redirect(table_url)
                table = self.table(request.POST.copy(), lesions=entry.table_lesions())
                if table.is_valid():
                    rows = table.lesion_rows()
                if rows:
                    result = services.visit_entry_save(
                        actor=request.user, entry=entry, rows=rows, reason=table.reason
                    )
        except Visit.DoesNotExist:
            raise Http404(_("No visit found matching the query")) from None
        except ValidationError as exc:
            # Nothing was kept: the conflicts and the versions to save again come from a new read
            # of what is saved now (another save may commit as soon as this one let go).
            table = self.table(table.data)
            table.is_valid()
            table.add_service_error(exc)
            table.show_conflicts()
            return self.render(table)
        if rows is None:
            table.show_conflicts()
            return self.render(table)
        if not rows:
            messages.info(request, _("Nothing to save: no row was entered or changed."))
            return redirect(table_url)
        messages.success(
            request,
            _("Saved for %(visit)s: %(m)s measurement(s) and %(i)s injection(s).")
            % {"visit": self.visit.code, "m": len(result.measurements), "i": len(result.injections)},
        )
        for warning in result.warnings:
            messages.warning(request, warning)
        visit_url = visit_page_url(self.visit)
        if "save_and_visit" in request.POST and visit_url:
            return redirect(visit_url)
        return redirect(table_url)

    def render(self, table: VisitTable):
        table.link_errors()
        takes_injections = Form.INJECTIONS in self.forms_expected
        takes_measurements = Form.MEASUREMENTS in self.forms_expected
        m_headers = measurement_headers() if takes_measurements else []
        i_headers = injection_headers() if takes_injections else []
        dosing = PROTOCOL.dosing
        saved_total = sum((row.injection.dose_mg for row in table.rows if row.injection), start=0)
        gate = (
            services.pregnancy_gate(self.participant, self.day)
            if takes_injections and self.closed_because is None
            else None
        )
        user = self.request.user
        context = {
            "visit": self.visit,
            "participant": self.participant,
            "day": self.day,
            "table": table,
            "forms": table.forms,
            "error_summary": table.error_summary(),
            "takes_measurements": takes_measurements,
            "takes_injections": takes_injections,
            "measurement_headers": m_headers,
            "injection_headers": i_headers,
            "column_count": 1 + len(m_headers) + len(i_headers),
            "expected": [
                FORM_LABELS[f] for f in (Form.MEASUREMENTS, Form.INJECTIONS) if f in self.forms_expected
            ],
            "pregnancy_gate": gate,
            "dosing": dosing,
            "saved_total": saved_total,
            "over_cap": saved_total > dosing.max_total_dose_per_session_mg,
            "editable": self.editable,
            "closed_because": self.closed_because,
            "visit_url": visit_page_url(self.visit),
            "can_add_lesion": user.has_perm("lesions.add_lesion") and self.editable,
            "table_url": reverse("lesions:visit-table", args=[self.visit.pk]),
        }
        return render(self.request, self.template_name, context)


urlpatterns = [
    path("participants/<int:pk>/lesions/", LesionListView.as_view(), name="lesion-list"),
    path("participants/<int:pk>/lesions/new/", LesionCreateView.as_view(), name="lesion-add"),
    path("lesions/<int:pk>/edit/", LesionUpdateView.as_view(), name="lesion-edit"),
    path("visits/<int:pk>/lesions/", VisitLesionTableView.as_view(), name="visit-table"),
]
