"""Placeholder: pages are being written."""

urlpatterns: list = []
