"""Placeholder: the patient's questionnaire pages and the coordinators' invitation pages."""

from django.http import Http404
from django.urls import path


def questionnaire(request, token: str):
    raise Http404


urlpatterns = [path("q/<str:token>/", questionnaire, name="questionnaire")]
