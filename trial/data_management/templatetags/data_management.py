"""`{% query_badge record %}`: the open-query badge that any record page adds with one line,
with links to raise a query (monitors) and to source data verification. A visit's badge counts
the queries on all its records, a participant's on all theirs. A locked visit or participant says so
(editing would be refused). Two queries per badge."""

from __future__ import annotations

from django import template
from django.contrib.contenttypes.models import ContentType
from django.urls import reverse

from participants.models import Participant, Visit
from trial.data_management.locking import active_lock_for
from trial.data_management.models import Query

register = template.Library()


@register.inclusion_tag("data_management/query_badge.html", takes_context=True)
def query_badge(context, record):
    user = context["request"].user
    sdv_url = ""
    queries = Query.objects.unresolved()
    if isinstance(record, Visit):
        # A visit's badge counts the queries on all its records.
        queries = queries.filter(visit=record)
        list_url = reverse("data_management:query-list") + f"?participant={record.participant_id}"
        if user.has_perm("data_management.view_verification"):
            sdv_url = reverse("data_management:visit-verification", args=[record.pk])
    elif isinstance(record, Participant):
        # A participant's badge counts the queries on all their records.
        queries = queries.filter(participant=record)
        list_url = reverse("data_management:query-list") + f"?participant={record.pk}"
        if user.has_perm("data_management.view_verification"):
            sdv_url = reverse("data_management:participant-verification", args=[record.pk])
    else:
        queries = queries.filter(
            content_type=ContentType.objects.get_for_model(type(record)), object_id=record.pk
        )
        list_url = reverse("data_management:query-list")
    lock = None
    if isinstance(record, Visit):
        lock = active_lock_for(visit=record)
    elif isinstance(record, Participant):
        lock = active_lock_for(participant=record)
    label = f"{record._meta.app_label}.{record._meta.model_name}"
    return {
        "open_count": queries.count(),
        "sdv_url": sdv_url,
        "lock": lock,
        "list_url": list_url,
        "raise_url": reverse("data_management:query-raise", args=[label, record.pk])
        if user.has_perm("data_management.raise_query")
        else "",
    }
