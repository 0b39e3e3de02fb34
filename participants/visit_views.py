"""Placeholder: visit pages are being written."""

urlpatterns: list = []
