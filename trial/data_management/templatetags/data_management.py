"""`{% query_badge record %}`: the open-query badge that any record page adds with one line,
with links to raise a query (monitors) and to source data verification. A visit's badge counts
the queries on all its records, a participant's on all theirs. A locked visit or participant says so
(editing would be refused). `{% query_badge record compact=True %}` is the small one for a row of
a form (one record per row; `label=` names the row for screen readers).

However many badges a page shows, the open queries are read once per participant (or, for a
record that names only its visit, once per visit) and the lock once per participant: the
first badge loads them into a per-request cache (`PageQueries`) and the others read it.
"""

from __future__ import annotations

from collections import Counter

from django import template
from django.contrib.contenttypes.models import ContentType
from django.urls import reverse

from participants.models import Participant, Visit
from trial.data_management.models import Query
from trial.locks import lock_in_force, lock_message

register = template.Library()


class PageQueries:
    """Open (unresolved) queries and locks of the participants a page shows, loaded on first use."""

    def __init__(self) -> None:
        self.seen: set[int] = set()
        self.loaded_participants: set[int] = set()
        self.loaded_visits: set[int] = set()
        self.by_record: Counter = Counter()
        self.by_visit: Counter = Counter()
        self.by_participant: Counter = Counter()
        self.locks: dict[tuple, object] = {}

    @classmethod
    def for_request(cls, request) -> PageQueries:
        if not hasattr(request, "_page_queries"):
            request._page_queries = cls()
        return request._page_queries

    def _load(self, queries) -> None:
        rows = queries.unresolved().values_list(
            "pk", "content_type_id", "object_id", "visit_id", "participant_id"
        )
        for pk, content_type_id, object_id, visit_id, participant_id in rows:
            if pk in self.seen:
                continue
            self.seen.add(pk)
            self.by_record[(content_type_id, object_id)] += 1
            self.by_visit[visit_id] += 1
            self.by_participant[participant_id] += 1

    def load(self, *, participant_id: int | None = None, visit_id: int | None = None) -> None:
        if participant_id is not None:
            if participant_id not in self.loaded_participants:
                self._load(Query.objects.filter(participant_id=participant_id))
                self.loaded_participants.add(participant_id)
        elif visit_id is not None and visit_id not in self.loaded_visits:
            self._load(Query.objects.filter(visit_id=visit_id))
            self.loaded_visits.add(visit_id)

    def lock(self, *, visit: Visit | None = None, participant: Participant | None = None):
        key = ("visit", visit.pk) if visit is not None else ("participant", participant.pk)
        if key not in self.locks:
            self.locks[key] = lock_in_force(visit=visit, participant=participant)
        return self.locks[key]


def _owner_ids(record) -> tuple[int | None, int | None]:
    """(participant id, visit id) of a record from its own columns: no query."""
    participant_id = getattr(record, "participant_id", None)
    visit_id = getattr(record, "visit_id", None) or getattr(record, "reported_at_visit_id", None)
    return participant_id, visit_id


@register.inclusion_tag("data_management/query_badge.html", takes_context=True)
def query_badge(context, record, compact=False, label=""):
    """`label` names the record for screen readers where `str(record)` would cost a query."""
    request = context["request"]
    user = request.user
    page = PageQueries.for_request(request)
    sdv_url = ""
    list_url = reverse("data_management:query-list")
    lock = None
    if isinstance(record, Visit):
        # A visit's badge counts the queries on all its records.
        page.load(participant_id=record.participant_id)
        open_count = page.by_visit[record.pk]
        list_url += f"?participant={record.participant_id}"
        if user.has_perm("data_management.view_verification"):
            sdv_url = reverse("data_management:visit-verification", args=[record.pk])
        lock = page.lock(visit=record)
    elif isinstance(record, Participant):
        # A participant's badge counts the queries on all their records.
        page.load(participant_id=record.pk)
        open_count = page.by_participant[record.pk]
        list_url += f"?participant={record.pk}"
        if user.has_perm("data_management.view_verification"):
            sdv_url = reverse("data_management:participant-verification", args=[record.pk])
        lock = page.lock(participant=record)
    else:
        participant_id, visit_id = _owner_ids(record)
        page.load(participant_id=participant_id, visit_id=visit_id)
        content_type = ContentType.objects.get_for_model(type(record))  # cached after the first
        open_count = page.by_record[(content_type.pk, record.pk)]
        if participant_id:
            list_url += f"?participant={participant_id}"
    label = f"{record._meta.app_label}.{record._meta.model_name}"
    if not isinstance(record, Visit | Participant) and user.has_perm("data_management.view_verification"):
        sdv_url = reverse("data_management:record-verification", args=[label, record.pk])
    return {
        "open_count": open_count,
        "compact": compact,
        "record_label": label or str(record),
        "sdv_url": sdv_url,
        "lock": lock,
        "lock_message": lock_message(lock) if lock else "",
        "list_url": list_url,
        "raise_url": reverse("data_management:query-raise", args=[label, record.pk])
        if user.has_perm("data_management.raise_query")
        else "",
    }
