"""Screening, eligibility, consent, participants, visits, adverse events (issues #3, #4)."""
