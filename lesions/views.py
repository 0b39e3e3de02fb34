"""Placeholder: lesion pages are being written."""

urlpatterns: list = []
