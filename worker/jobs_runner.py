"""What a generate or train job does, shared by the Celery tasks and the embedded worker thread;
and the evaluation task's body (``run_evaluate``), which is no stored job, only the library call.

The durable job record is the truth: a job is marked running with an attempt count (a job
that keeps killing its worker fails after ``max_attempts`` instead of looping), and ends in
one save that sets its state, results and finish time together. Results are uploaded under
``tmp/{job}/`` and published to ``results/{job}/`` before that save, so a result a client
can see is always complete. Cancellation is cooperative: generation checks between videos,
training after every step (and keeps its last checkpoint as a model version).

A Celery worker runs a job only under its lease (``savgan.common.leases``): a delivery whose job
another worker holds is dropped, and a job whose lease is lost stops at its next check (the same
points as cancellation, plus before publishing and before the final save) without writing
anything more: the worker that holds the lease now runs it to its end.

Counters for ``/metrics`` (``TransientState.incr``): ``generated_frames``, ``jobs_succeeded``,
``jobs_failed``, ``jobs_cancelled``, ``job_duration_seconds_sum:{kind}``,
``job_duration_seconds_count:{kind}`` and ``duplicate_deliveries_dropped``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from celery.exceptions import SoftTimeLimitExceeded

from savgan.common.context import Context
from savgan.common.jobs import JobRecord, JobState, Progress, ResultFile
from savgan.common.leases import JobLease, LeaseLost, NoLease
from savgan.common.outages import OUTAGE_ERRORS, outage_of, ride_out
from savgan.common.requests import GenerateRequest, TrainRequest
from savgan.common.settings import Settings
from savgan.common.webhooks import send_webhook
from savgan.model.layout import LOSSES, MANIFEST, RUN_FILES, SAMPLES
from savgan.worker import runtime
from savgan.worker.progress_writer import LatestProgress

if TYPE_CHECKING:
    from savgan.model.train import TrainProgress

log = logging.getLogger(__name__)

ProgressCallback = Callable[[Progress], None]
Lease = JobLease | NoLease
# Losses a training job reports in its progress message, where the family has them.
PROGRESS_LABELS = (("W video", "wasserstein_video"), ("W image", "wasserstein_image"), ("G loss", "loss_generator"))
CONTENT_TYPES = {".tif": "image/tiff", ".mp4": "video/mp4", ".gif": "image/gif", ".png": "image/png"}


class JobCancelled(Exception):
    """Raised inside a job when its owner asked to cancel it."""


@dataclass
class Outcome:
    state: JobState
    error: str | None = None
    results: list[ResultFile] = field(default_factory=list)
    model: str | None = None


class Reporter:
    """Turns (step, total) into a Progress with an ETA, for the transient store and the task state.

    Both are written by a :class:`LatestProgress` thread, so a Redis outage delays the progress
    a client sees but never the job. It carries the job's lease, which the work checks.
    """

    def __init__(self, ctx: Context, job_id: str, callback: ProgressCallback | None, lease: Lease | None = None) -> None:
        self.ctx, self.job_id, self.callback = ctx, job_id, callback
        self.lease = lease or NoLease()
        self.started = time.monotonic()
        self.last = Progress()
        self.outbox = LatestProgress(self._write, ctx.settings, job_id)

    def _write(self, progress: Progress) -> None:
        self.ctx.jobs.set_progress(self.job_id, progress)
        if self.callback:
            self.callback(progress)

    def update(self, step: int, total: int, message: str = "", eta_s: float | None = None) -> None:
        elapsed = time.monotonic() - self.started
        if eta_s is None and 0 < step < total:
            eta_s = elapsed / step * (total - step)
        fraction = min(1.0, step / total) if total else 0.0
        self.last = Progress(fraction=fraction, step=step, total=total, eta_s=eta_s, message=message)
        self.outbox.offer(self.last)


def run_generate(
    ctx: Context, job_id: str, on_progress: ProgressCallback | None = None, lease: Lease | None = None
) -> JobState | None:
    """Run a generate job to its end; None when there was nothing to run (unknown or finished job,
    or one another worker holds) or when it stopped because its lease was lost."""
    return _run(ctx, job_id, _generate, on_progress, lease or NoLease())


def run_train(
    ctx: Context, job_id: str, on_progress: ProgressCallback | None = None, lease: Lease | None = None
) -> JobState | None:
    """Run a train job to its end; None as for :func:`run_generate`."""
    return _run(ctx, job_id, _train, on_progress, lease or NoLease())


Work = Callable[[Context, JobRecord, Reporter], Outcome]


EVALUATE_FIELDS = {"model", "metrics", "count", "seed", "frames", "real"}


def run_evaluate(ctx: Context, request: dict, on_progress: ProgressCallback | None = None) -> dict:
    """``savgan evaluate`` for a worker: the same library function, progress as :class:`Progress`.

    ``request`` holds ``model`` and optionally ``metrics``, ``count``, ``seed``, ``frames``,
    ``real``. The I3D weights for FVD come from the worker's own ``SAVGAN_I3D_CHECKPOINT``,
    never from a path in the request.
    """
    from savgan.model.metrics.evaluate import DEFAULT_METRICS, evaluate

    unknown = set(request) - EVALUATE_FIELDS
    if unknown or "model" not in request:
        raise ValueError(f"an evaluate request needs 'model' and may hold {sorted(EVALUATE_FIELDS - {'model'})}; "
                         f"unknown: {sorted(unknown)}")

    def report(stage: str, done: int, total: int) -> None:
        if on_progress:
            fraction = min(1.0, done / total) if total else 0.0
            on_progress(Progress(fraction=fraction, step=done, total=total, message=stage))

    options = {k: request[k] for k in ("count", "seed", "frames", "real") if k in request}
    return evaluate(
        request["model"], list(request.get("metrics", DEFAULT_METRICS)), **options,
        device=runtime.resolve_device(ctx.settings.device), show_progress=False, on_progress=report,
    )


def _run(ctx: Context, job_id: str, work: Work, on_progress: ProgressCallback | None, lease: Lease) -> JobState | None:
    """Take the job's lease, then read its record: read after, a previous holder's final save is
    always seen, so a finished job is never run again."""
    if not ride_out(lease.acquire, ctx.settings, f"job {job_id}: taking its lease"):
        log.warning("job %s: another worker holds its lease; this delivery is a duplicate and is dropped", job_id)
        ride_out(partial(ctx.transient.incr, "duplicate_deliveries_dropped"), ctx.settings, f"job {job_id}: counting it")
        return None
    reporter = Reporter(ctx, job_id, on_progress, lease)
    try:
        record = ride_out(partial(ctx.jobs.get, job_id), ctx.settings, f"job {job_id}: reading its record")
        if record is None:
            log.warning("job %s has no record; nothing to run", job_id)
            return None
        if record.finished:
            return None
        outcome = _admit(ctx, record) or _work(ctx, record, work, reporter)
        _finish(ctx, record, outcome, reporter)
        return record.state
    except LeaseLost as lost:
        reporter.outbox.close()
        log.error("%s; it is left to the worker that holds it", lost)
        return None
    finally:
        lease.release()


def _work(ctx: Context, record: JobRecord, work: Work, reporter: Reporter) -> Outcome:
    """The job's outcome, whatever happens; a lost lease is no outcome and goes up to :func:`_run`."""
    try:
        return work(ctx, record, reporter)
    except LeaseLost:
        raise
    except JobCancelled:
        return Outcome("cancelled")
    except SoftTimeLimitExceeded:
        limit = ctx.settings.generate_soft_time_limit_s if record.kind == "generate" else ctx.settings.train_soft_time_limit_s
        return Outcome("failed", error=f"the job took longer than {limit} s, this server's limit, and was stopped")
    except Exception as err:  # noqa: BLE001 - every failure must end the job with a message
        log.exception("job %s failed", record.id)
        return Outcome("failed", error=describe_error(err, ctx.settings))


def abandon(ctx: Context, job_id: str, state: JobState, error: str | None = None) -> None:
    """End a job whose process was stopped from outside (hard time limit, revoke), unless it already ended."""
    record = ctx.jobs.get(job_id)
    if record is not None and not record.finished:
        reporter = Reporter(ctx, job_id, None)
        reporter.last = record.progress
        _finish(ctx, record, Outcome(state, error=error), reporter)


def describe_error(err: Exception, settings: Settings) -> str:
    """Bad inputs (ValueError, including unreadable recordings; unknown models) speak for themselves,
    and so does a backend that went away while the job needed it."""
    if isinstance(err, ValueError | LookupError):
        return str(err)
    outage = outage_of(err, settings)
    if outage is not None:
        return f"{outage.describe()}; the job stopped there: submit it again once that is back"
    return f"internal error: {type(err).__name__}: {err}"


def _admit(ctx: Context, record: JobRecord) -> Outcome | None:
    """Mark the job running, or say why it ends before starting."""
    if _cancel_requested(ctx, record.id):
        return Outcome("cancelled")
    record.attempts += 1
    if record.attempts > ctx.settings.max_attempts:
        return Outcome(
            "failed",
            error=f"worker died {record.attempts - 1} times on this job; giving up "
            "(it may need more memory or time than a worker has)",
        )
    record.state = "running"
    record.started_at = record.started_at or time.time()
    _save(ctx, record)
    return None


def _save(ctx: Context, record: JobRecord) -> None:
    ride_out(partial(ctx.jobs.save, record), ctx.settings, f"job {record.id}: saving its record ({record.state})")


def _finish(ctx: Context, record: JobRecord, outcome: Outcome, reporter: Reporter) -> None:
    reporter.outbox.close()
    reporter.lease.check()
    record.state = outcome.state
    record.error = outcome.error
    record.results = outcome.results
    record.model = outcome.model
    record.finished_at = time.time()
    record.progress = reporter.last
    if outcome.state == "succeeded":
        record.progress = reporter.last.model_copy(update={"fraction": 1.0, "eta_s": 0.0, "message": "done"})
    _save(ctx, record)
    counters = {f"jobs_{outcome.state}": 1.0}
    if record.started_at is not None:
        counters[f"job_duration_seconds_sum:{record.kind}"] = record.finished_at - record.started_at
        counters[f"job_duration_seconds_count:{record.kind}"] = 1.0
    for counter, amount in counters.items():
        ride_out(partial(ctx.transient.incr, counter, amount), ctx.settings, f"job {record.id}: counting it")
    send_webhook(record, ctx.settings)


def _cancel_requested(ctx: Context, job_id: str) -> bool:
    """While Redis is down the flag cannot be read: the job goes on, and a cancel asked for
    meanwhile (the API answers 503 to it) has to be asked again."""
    try:
        return ctx.jobs.cancel_requested(job_id)
    except OUTAGE_ERRORS as err:
        if outage_of(err, ctx.settings) is None:
            raise
        return False


def _check_stop(ctx: Context, reporter: Reporter) -> None:
    """Between units of work: stop when the lease was lost or the owner asked to cancel."""
    reporter.lease.check()
    if _cancel_requested(ctx, reporter.job_id):
        raise JobCancelled


def _file_stem(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in text)


def _content_type(path: Path) -> str:
    return CONTENT_TYPES.get(path.suffix, "application/octet-stream")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _publish_results(ctx: Context, job_id: str, files: list[tuple[Path, str, str]]) -> list[ResultFile]:
    """Upload every (path, role, format) under tmp/, then publish them all: nothing partial is ever a result."""
    results = []
    for path, role, fmt in files:
        ctx.storage.put_file(f"tmp/{job_id}/{path.name}", path, _content_type(path))
        results.append(
            ResultFile(
                key=f"results/{job_id}/{path.name}",
                filename=path.name,
                role=role,
                format=fmt,
                bytes=path.stat().st_size,
                sha256=_sha256(path),
            )
        )
    for result in results:
        ctx.storage.publish(f"tmp/{job_id}/{result.filename}", result.key)
    return results


def _generate(ctx: Context, record: JobRecord, reporter: Reporter) -> Outcome:
    from savgan.model.generate import generate_videos
    from savgan.model.video_io.calibration import calibration, video_for_format
    from savgan.model.video_io.formats import write_video
    from savgan.model.video_io.preview import montage_png

    request = GenerateRequest.model_validate(record.params)
    info = ctx.models.resolve(record.owner, request.model)
    reporter.update(0, request.count, f"loading model {info.spec}")
    generator = runtime.models.generator(ctx, info)
    _check_stop(ctx, reporter)

    def on_video(done: int, total: int) -> None:
        reporter.update(done, total, f"generated video {done} of {total}")
        _check_stop(ctx, reporter)

    videos = generate_videos(generator, request.seed, request.frames, request.count, on_video)
    pixel, interval = calibration(info.physical, request.pixel_size_um, request.frame_interval_s)
    with tempfile.TemporaryDirectory(prefix=f"savgan-{record.id}-") as tmp:
        folder = Path(tmp)
        files: list[tuple[Path, str, str]] = []
        for index, video in enumerate(videos):
            stem = folder / _file_stem(f"{info.name}-{info.version}_seed{request.seed}_{index:03d}")
            files += [
                (write_video(stem, video_for_format(video, fmt, info.physical), fmt, pixel, interval), "video", fmt)
                for fmt in request.formats
            ]
        preview = folder / "preview.png"
        montage_png(preview, videos)
        files.append((preview, "preview", "png"))
        reporter.lease.check()
        results = _publish_results(ctx, record.id, files)
    frames = request.count * request.frames
    ride_out(partial(ctx.transient.incr, "generated_frames", frames), ctx.settings, f"job {record.id}: counting frames")
    return Outcome("succeeded", results=results)


def run_prefix(job_id: str) -> str:
    """Where a training's checkpoints live while it runs; the API serves the latest samples.png from there."""
    return f"runs/{job_id}/"


def _download_checkpoint(ctx: Context, job_id: str, run_dir: Path) -> bool:
    """A previous attempt's last checkpoint, when one was completely uploaded."""
    prefix = run_prefix(job_id)
    if not ctx.storage.exists(prefix + MANIFEST):
        return False
    run_dir.mkdir(parents=True, exist_ok=True)
    for name in (*RUN_FILES, MANIFEST):
        if ctx.storage.exists(prefix + name):
            ctx.storage.download(prefix + name, run_dir / name)
    return True


def _upload_checkpoint(ctx: Context, job_id: str, run_dir: Path) -> None:
    """Manifest removed first and written last: a stored manifest always matches the files beside it."""
    prefix = run_prefix(job_id)
    ctx.storage.delete(prefix + MANIFEST)
    for name in RUN_FILES:
        if (run_dir / name).is_file():
            ctx.storage.put_file(prefix + name, run_dir / name)
    ctx.storage.put_file(prefix + MANIFEST, run_dir / MANIFEST, "application/json")


def _train(ctx: Context, record: JobRecord, reporter: Reporter) -> Outcome:
    from savgan.model.config import ModelConfig, preset, train_config_for, with_recipe
    from savgan.model.data.sources import load_training_data
    from savgan.model.train import Trainer, TrainHooks

    request = TrainRequest.model_validate(record.params)
    device = runtime.resolve_device(ctx.settings.device)
    with tempfile.TemporaryDirectory(prefix=f"savgan-{record.id}-") as tmp:
        data_dir, run_dir = Path(tmp) / "data", Path(tmp) / "run"
        data_dir.mkdir()
        reporter.update(0, request.steps, "downloading recordings")
        paths = []
        for index, upload in enumerate(request.uploads):
            path = data_dir / _file_stem(f"{index:02d}-{upload.filename}")
            ctx.storage.download(upload.key, path)
            paths.append(path)
        resumed = _download_checkpoint(ctx, record.id, run_dir)
        base_dir, base_spec = None, None
        if resumed:
            config = ModelConfig.from_dict(json.loads((run_dir / MANIFEST).read_text())["model_config"])
        elif request.base_model:
            base = ctx.models.resolve(record.owner, request.base_model)
            base_dir, base_spec = ctx.models.fetch(base, ctx.settings.worker_model_cache_dir), base.spec
            config = with_recipe(
                ModelConfig.from_dict(json.loads((base_dir / MANIFEST).read_text())["model_config"]), request.recipe
            )
        else:
            config = with_recipe(preset(request.preset), request.recipe)
        reporter.update(0, request.steps, "cutting training patches")
        data = load_training_data(
            [str(p) for p in paths], config, count=0, seed=request.seed, show_progress=False, patch_method=request.patch_method
        )
        _check_stop(ctx, reporter)
        if resumed:
            trainer = Trainer.resume(run_dir, data.bank, device, steps=request.steps)
        else:
            train_config = train_config_for(  # the family's and recipe's defaults where the request leaves them out
                config.arch,
                request.recipe,
                steps=request.steps,
                batch_size=request.batch_size,
                lr_g=request.lr_g,
                lr_d=request.lr_d,
                n_critic=request.n_critic,
                ema_decay=request.ema_decay,
                image_lambda=request.image_lambda,
                penalty_step=request.penalty_step,
                seed=request.seed,
                sample_every=request.checkpoint_every,
                checkpoint_every=request.checkpoint_every,
            )
            trainer = Trainer(config, train_config, data.bank, run_dir, data.description, device, data.physical)
            if base_dir is not None:
                trainer.load_weights(base_dir, base_spec)
        checkpoint_every = trainer.train_config.checkpoint_every

        def on_progress(progress: TrainProgress) -> None:
            reporter.lease.check()  # raised through the trainer: no checkpoint of a job that is no longer ours
            losses = progress.losses
            reporter.update(
                progress.step,
                progress.total_steps,
                ", ".join(f"{label} {losses[key]:.3f}" for label, key in PROGRESS_LABELS if key in losses),
                progress.eta_s,
            )
            if progress.step % checkpoint_every == 0:
                _upload_checkpoint(ctx, record.id, run_dir)

        hooks = TrainHooks(on_progress, lambda: _cancel_requested(ctx, record.id), show_progress_bar=False)
        result = trainer.train(hooks)
        reporter.lease.check()
        version = ctx.models.publish_run(record.owner, request.name, run_dir)
        shown = [(run_dir / SAMPLES, "montage", "png"), (run_dir / LOSSES, "preview", "png")]
        results = _publish_results(ctx, record.id, [f for f in shown if f[0].is_file()])
    ctx.storage.delete_prefix(run_prefix(record.id))
    return Outcome("cancelled" if result.stopped_early else "succeeded", results=results, model=version.spec)
