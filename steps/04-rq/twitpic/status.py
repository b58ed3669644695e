"""A small status page: the queue's depth, its registries, and the workers, from RQ's own records."""

from flask import Blueprint, current_app, render_template
from rq import Worker
from rq.registry import FailedJobRegistry, ScheduledJobRegistry, StartedJobRegistry

from .queue import get_queue
from .tasks import breaker_for

bp = Blueprint("status", __name__)


def queue_status(queue) -> dict:
    workers = Worker.all(queue=queue)
    started = StartedJobRegistry(queue=queue)
    return {
        "queued": queue.count,
        # Off the queue, on RQ's intermediate list, not started: a worker is about to run it, or
        # died before it could (the supervisor puts such a job back).
        "taken": sum(job_id not in started for job_id in queue.intermediate_queue.get_job_ids()),
        "started": started.count,
        "scheduled": ScheduledJobRegistry(queue=queue).count,  # waiting for a retry
        "failed": FailedJobRegistry(queue=queue).count,
        "workers": sorted(worker.name for worker in workers),
        "busy_workers": sum(worker.get_state() == "busy" for worker in workers),
        "paused_workers": sum(worker.get_state() == "suspended" for worker in workers),  # by the breaker
        "breaker_open": breaker_for(queue.connection, {"TIME_SCALE": current_app.config["TIME_SCALE"]}).is_open(),
    }


@bp.get("/status")
def status():
    return render_template("status.html", status=queue_status(get_queue()))


@bp.get("/status.json")
def status_json():
    return queue_status(get_queue())
