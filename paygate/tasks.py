"""Options shared by the pipeline's Celery tasks."""

from django.db import DatabaseError

# At-least-once: acknowledged after the task ran. A database outage is retried with
# backoff; anything else is a bug and goes to the log with its traceback.
PIPELINE_TASK = {
    "acks_late": True,
    "autoretry_for": (DatabaseError,),
    "retry_backoff": True,
    "retry_backoff_max": 60,
    "retry_kwargs": {"max_retries": 10},
}
