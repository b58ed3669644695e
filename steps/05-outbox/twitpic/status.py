"""A small status page: the outbox, from the database; the queue's depth, its registries and its job
workers, from RQ's own records."""

from flask import Blueprint, current_app, render_template
from rq import Worker

from .db import get_db
from .outbox import outbox_status
from .queue import get_queue, what_could_lose_jobs
from .tasks import breaker_for

bp = Blueprint("status", __name__)


def queue_status(queue) -> dict:
    workers = Worker.all(queue=queue)
    # Counted without RQ's clean-up, which `.count` would run: this page only reads, and the
    # job workers' maintenance passes do the cleaning (see RQ_MAINTENANCE_INTERVAL).
    outbox = outbox_status(get_db())
    return {
        "outbox_unsent": outbox.unsent,  # saved, not queued yet
        "outbox_sent": outbox.sent,  # queued, not posted yet
        "relay_lag": outbox.lag,  # seconds the oldest unsent tweet has waited for the relay
        "queued": queue.count,
        "started": queue.started_job_registry.get_job_count(cleanup=False),  # running now
        "scheduled": queue.scheduled_job_registry.get_job_count(cleanup=False),  # to be tried again
        "failed": queue.failed_job_registry.get_job_count(cleanup=False),
        "workers": sorted(worker.name for worker in workers),
        "busy_workers": sum(worker.get_state() == "busy" for worker in workers),
        "breaker_open": breaker_for(queue.connection, current_app.config).is_open(),
        "could_lose_jobs": what_could_lose_jobs(queue.connection),
    }


@bp.get("/status")
def status():
    return render_template("status.html", status=queue_status(get_queue()))


@bp.get("/status.json")
def status_json():
    return queue_status(get_queue())
