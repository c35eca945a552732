"""``savgan worker``: a prefork Celery worker on the chosen queues.

Concurrency is processes per host; with GPUs, one per GPU (each child loads its own models).
"""

from __future__ import annotations

from savgan.worker.app import QUEUES


def run_worker(queues: list[str], concurrency: int, loglevel: str) -> None:
    unknown = sorted(set(queues) - set(QUEUES))
    if unknown or not queues:
        raise ValueError(f"unknown queue(s) {', '.join(unknown) or '(none given)'}; known queues: {', '.join(QUEUES)}")
    if concurrency < 1:
        raise ValueError(f"concurrency must be at least 1, got {concurrency}")
    from savgan.worker.tasks import app

    app.worker_main(["worker", "-Q", ",".join(queues), "-c", str(concurrency), "-P", "prefork", "-l", loglevel])
