"""A small status page: the queue's depth, its registries, and the workers, from RQ's own records."""

from flask import Blueprint, render_template
from rq import Worker
from rq.registry import FailedJobRegistry, ScheduledJobRegistry, StartedJobRegistry

from .breaker import CircuitBreaker
from .queue import get_queue

bp = Blueprint("status", __name__)


def queue_status(queue) -> dict:
    return {
        "queued": queue.count,
        "started": StartedJobRegistry(queue=queue).count,
        "scheduled": ScheduledJobRegistry(queue=queue).count,  # waiting for a retry
        "failed": FailedJobRegistry(queue=queue).count,
        "workers": sorted(worker.name for worker in Worker.all(queue=queue)),
        "breaker_open": CircuitBreaker(queue.connection, "twitter", 1, 1, 1).is_open(),
    }


@bp.get("/status")
def status():
    return render_template("status.html", status=queue_status(get_queue()))


@bp.get("/status.json")
def status_json():
    return queue_status(get_queue())
