"""The trial: project wiring (settings, urls, Celery) and the protocol, sites, users and roles."""

from trial.celery import app as celery_app

__all__ = ["celery_app"]
