"""The Celery application. Tasks take ids, are idempotent and are enqueued on commit."""

import os

from celery import Celery, Task

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "trial.settings")


class AuditedTask(Task):
    """Every task runs inside an audit context naming the task, so its changes are attributed."""

    def __call__(self, *args, **kwargs):
        from trial.audit import audit_context

        with audit_context(actor=f"task {self.name}", task=self.name, task_id=self.request.id, user=None):
            return super().__call__(*args, **kwargs)


app = Celery("trial", task_cls=AuditedTask)
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
