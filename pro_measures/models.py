"""Instrument definitions, invitations, responses, reminders (issue #5)."""
