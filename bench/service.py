"""End-to-end generate latency and enqueue throughput of the service, in both deployment modes.

    python bench/service.py --runs 20 --requests 1000 --concurrency 50 --baseline 3894c27

End to end: ``POST /generate`` (bundled ``mmnist``, one OME-TIFF of ``--frames`` frames) until
the video is downloaded through its result link, polling ``GET /jobs/{id}``; measured
(a) against ``savgan serve --embedded`` and (b) against ``savgan serve`` + one ``savgan worker``
with Redis (the machine's, on a dedicated db) and an S3 protocol server (moto, a subprocess).
The processes are the ones the docker images run, so the figures include their real overheads
(access log, JSON records in S3, Celery). The first job of each mode loads the model and is
reported apart as ``cold``.

Enqueue: ``POST /generate`` to the distributed API with the worker stopped, so generation
never competes for the CPU with the API; the queue is purged after each variant. Two loads,
for each ``--api-workers`` count: closed loop (``--concurrency`` clients, each sending its
next request as soon as the previous one answered: the throughput ceiling, where latency is
queueing behind the other 49 clients) and open loop (requests arriving at fixed ``--rates``
from up to ``--concurrency`` connections: latency at a given load). Each load run also reports
the CPU seconds per request of the API's processes (``/proc/<pid>/stat`` of its process group,
read before and after the run) and of this load generator (its process time). ``--baseline COMMIT`` runs the same enqueue loads against
the API of that commit too (its tree exported with ``git archive``, put first on the API's
``PYTHONPATH``), in the same run, for a before/after comparison. Everything (clients, API,
moto, Redis) shares this machine's cores. Embedded mode has no enqueue figure: its queued jobs
start at once in the API process.

Targets of the performance issues (reported, not asserted): end-to-end p50 under 1 s on the CPU
preset, enqueue p99 under 50 ms (closed loop at 50 clients; open loop at 100 requests/s).
Writes bench/results/service.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import redis
import tifffile

from savgan.common.settings import Settings
from savgan.common.storage import S3Storage

BENCH_KEY = "bench-key-0123456789abcdef"
TERMINAL = ("succeeded", "failed", "cancelled")
START_TIMEOUT_S = 120
JOB_TIMEOUT_S = 120
PACKAGES = ("savgan", "torch", "fastapi", "uvicorn", "celery", "kombu", "redis", "boto3", "moto", "httpx")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def savgan_command(*args: str) -> list[str]:
    """The ``savgan`` script of this interpreter's environment, not whatever ``PATH`` finds first."""
    return [str(Path(sys.executable).parent / "savgan"), *args]


@contextlib.contextmanager
def process(command: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen]:
    """A child in its own process group (a Celery worker has pool children), stopped with it on exit."""
    with log.open("wb") as out:
        child = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield child
    finally:
        stop(child)


def stop(child: subprocess.Popen) -> None:
    if child.poll() is None:
        os.killpg(child.pid, signal.SIGTERM)
        try:
            child.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()


def wait_ok(url: str, child: subprocess.Popen, log: Path) -> None:
    """Until ``url`` answers 200 (``/readyz`` includes a worker answering ping)."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        if child.poll() is not None:
            raise RuntimeError(f"{url}: the server exited with {child.returncode}:\n{log.read_text()[-3000:]}")
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(url, timeout=5).status_code == 200:
                return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} not ready after {START_TIMEOUT_S} s; see {log}")
        time.sleep(0.2)


def child_env(settings: dict[str, str], torch_threads: int) -> dict[str, str]:
    """This environment without stray ``SAVGAN_*`` variables, plus the mode's settings."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("SAVGAN_")}
    return {**base, **settings, "SAVGAN_DEVICE": "cpu", "OMP_NUM_THREADS": str(torch_threads)}


@dataclass
class Run:
    """One generate request, end to end; ``queued_s`` and ``run_s`` are the server's own timings."""

    total_s: float
    submit_s: float
    queued_s: float
    run_s: float
    download_s: float


def one_job(api: httpx.Client, files: httpx.Client, body: dict[str, Any], poll_s: float) -> Run:
    started = time.perf_counter()
    response = api.post("/generate", json=body)
    response.raise_for_status()
    submitted = time.perf_counter()
    job_url = response.json()["links"]["self"]
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while (job := api.get(job_url).raise_for_status().json())["state"] not in TERMINAL:
        if time.monotonic() > deadline:
            raise TimeoutError(f"job {job['id']} still {job['state']} after {JOB_TIMEOUT_S} s")
        time.sleep(poll_s)
    if job["state"] != "succeeded":
        raise RuntimeError(f"job {job['id']} {job['state']}: {job['error']}")
    finished = time.perf_counter()
    video = next(r for r in job["results"] if r["format"] == "ome-tiff")
    content = files.get(video["url"]).raise_for_status().content
    done = time.perf_counter()
    with tifffile.TiffFile(io.BytesIO(content)) as tif:  # checked after the clock stops
        shape = tif.series[0].shape
    if shape[0] != body["frames"]:
        raise RuntimeError(f"downloaded {shape}, asked for {body['frames']} frames")
    return Run(done - started, submitted - started, job["timings"]["queued_s"], job["timings"]["run_s"], done - finished)


def end_to_end(base_url: str, headers: dict[str, str], frames: int, runs: int, poll_s: float) -> dict[str, Any]:
    """A cold job (model load), then ``runs`` measured ones, one at a time, with distinct seeds."""
    with httpx.Client(base_url=base_url, headers=headers, timeout=60) as api, httpx.Client(timeout=60) as files:
        jobs = [one_job(api, files, {"model": "mmnist", "frames": frames, "seed": seed, "formats": ["ome-tiff"]}, poll_s)
                for seed in range(runs + 1)]
    cold, warm = jobs[0], jobs[1:]
    return {
        "cold_s": round(cold.total_s, 4),
        **{field: summary([getattr(r, field) for r in warm]) for field in asdict(cold)},
    }


ENQUEUE_BODY = {"model": "mmnist", "frames": 32, "formats": ["ome-tiff"]}


@dataclass
class Outcomes:
    """Latency and outcome of every ``POST /generate`` of one load run."""

    latencies: list[float] = field(default_factory=list)
    failures: dict[str, int] = field(default_factory=dict)

    async def post(self, client: httpx.AsyncClient, since: float) -> None:
        """One request; its latency counts from ``since``. A connection the server dropped is a
        failed request to count (by the transport error's name), not a reason to abandon the run."""
        try:
            outcome = str((await client.post("/generate", json=ENQUEUE_BODY)).status_code)
        except httpx.TransportError as err:
            outcome = type(err).__name__
        self.latencies.append(time.perf_counter() - since)
        if outcome != "202":
            self.failures[outcome] = self.failures.get(outcome, 0) + 1


@contextlib.asynccontextmanager
async def warm_client(base_url: str, headers: dict[str, str], concurrency: int) -> AsyncIterator[httpx.AsyncClient]:
    """A client with ``concurrency`` connections already open, so connection set-up is not measured."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base_url, headers=headers, limits=limits, timeout=60) as client:
        await asyncio.gather(*(client.post("/generate", json=ENQUEUE_BODY) for _ in range(concurrency)))
        yield client


async def enqueue(api: Api, headers: dict[str, str], requests: int, concurrency: int) -> dict[str, Any]:
    """``concurrency`` clients, each sending its next request as soon as the previous one answered."""
    outcomes = Outcomes()
    remaining = iter(range(requests))
    async with warm_client(api.url, headers, concurrency) as client:
        async def client_loop() -> None:
            for _ in remaining:
                await outcomes.post(client, time.perf_counter())

        cpu_before, client_before, started = api.cpu_s(), time.process_time(), time.perf_counter()
        await asyncio.gather(*(client_loop() for _ in range(concurrency)))
        wall, cpu, client_cpu = time.perf_counter() - started, api.cpu_s() - cpu_before, time.process_time() - client_before
    return {
        "requests": requests,
        "concurrency": concurrency,
        "throughput_rps": round(requests / wall, 1),
        "api_cpu_ms_per_request": round(cpu / requests * 1e3, 2),
        "client_cpu_ms_per_request": round(client_cpu / requests * 1e3, 2),
        "failures": outcomes.failures,
        "latency_s": summary(outcomes.latencies, (50, 95, 99)),
    }


async def enqueue_at_rate(api: Api, headers: dict[str, str], rate: float, seconds: float, concurrency: int) -> dict[str, Any]:
    """Open loop: requests arrive every 1/``rate`` s whatever the answers, from at most
    ``concurrency`` connections. Latency counts from the scheduled arrival, so a slow answer
    that delays the next send is charged to the latency (no coordinated omission)."""
    outcomes = Outcomes()
    slots = asyncio.Semaphore(concurrency)
    async with warm_client(api.url, headers, concurrency) as client:
        async def one(scheduled: float) -> None:
            async with slots:
                await outcomes.post(client, scheduled)

        cpu_before, client_before, start = api.cpu_s(), time.process_time(), time.perf_counter()
        tasks = []
        for i in range(int(rate * seconds)):
            scheduled = start + i / rate
            await asyncio.sleep(max(0.0, scheduled - time.perf_counter()))
            tasks.append(asyncio.create_task(one(scheduled)))
        await asyncio.gather(*tasks)
        wall, cpu, client_cpu = time.perf_counter() - start, api.cpu_s() - cpu_before, time.process_time() - client_before
    return {
        "offered_rps": rate,
        "achieved_rps": round(len(outcomes.latencies) / wall, 1),
        "api_cpu_ms_per_request": round(cpu / len(outcomes.latencies) * 1e3, 2),
        "client_cpu_ms_per_request": round(client_cpu / len(outcomes.latencies) * 1e3, 2),
        "concurrency": concurrency,
        "failures": outcomes.failures,
        "latency_s": summary(outcomes.latencies, (50, 95, 99)),
    }


def summary(values: list[float], percentiles: tuple[int, ...] = (50, 95)) -> dict[str, float]:
    points = np.percentile(values, percentiles)
    return {
        **{f"p{p}": round(float(v), 4) for p, v in zip(percentiles, points, strict=True)},
        "min": round(min(values), 4),
        "max": round(max(values), 4),
    }


def embedded(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    port = free_port()
    env = child_env({"SAVGAN_LOCAL_STORAGE_DIR": str(folder / "storage"),
                     "SAVGAN_WORKER_MODEL_CACHE_DIR": str(folder / "cache")}, args.torch_threads)
    log = folder / "embedded.log"
    with process(savgan_command("serve", "--embedded", "--port", str(port)), env, log) as child:
        base = f"http://127.0.0.1:{port}"
        wait_ok(f"{base}/readyz", child, log)
        return {"end_to_end": end_to_end(base, {}, args.frames, args.runs, args.poll_s)}


def distributed(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    redis_url = f"redis://127.0.0.1:6379/{args.redis_db}"
    broker = redis.Redis.from_url(redis_url)
    if broker.dbsize():
        raise SystemExit(f"Redis db {args.redis_db} is not empty; pick a free one with --redis-db")
    s3_port = free_port()
    settings = {
        "SAVGAN_MODE": "distributed",
        "SAVGAN_STORAGE": "s3",
        "SAVGAN_REDIS_URL": redis_url,
        "SAVGAN_S3_ENDPOINT_URL": f"http://127.0.0.1:{s3_port}",
        "SAVGAN_S3_BUCKET": "savgan-bench",
        "SAVGAN_S3_ACCESS_KEY_ID": "bench",
        "SAVGAN_S3_SECRET_ACCESS_KEY": "bench",
        "SAVGAN_API_KEYS": f"bench:{BENCH_KEY}",
        "SAVGAN_SIGNING_SECRET": "bench-signing-secret-0123456789",
        "SAVGAN_WORKER_MODEL_CACHE_DIR": str(folder / "cache"),
    }
    env = child_env(settings, args.torch_threads)
    headers = {"Authorization": f"Bearer {BENCH_KEY}"}
    moto = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(s3_port)]
    enqueue_variants = []
    try:
        with process(moto, env, folder / "moto.log") as s3:
            wait_ok(f"http://127.0.0.1:{s3_port}/moto-api/", s3, folder / "moto.log")
            S3Storage(Settings(**{k.removeprefix("SAVGAN_").lower(): v for k, v in settings.items()})).ensure_bucket()
            worker_command = savgan_command("worker", "--queues", "generate", "--concurrency", "1")
            with process(worker_command, env, folder / "worker.log") as worker, api_server(env, folder, 1) as api:
                wait_ok(f"{api.url}/readyz", worker, folder / "worker.log")
                latency = end_to_end(api.url, headers, args.frames, args.runs, args.poll_s)
            codes = [("current", env)]
            if args.baseline:
                codes.insert(0, (f"baseline {args.baseline}", {**env, "PYTHONPATH": str(export_tree(args.baseline, folder))}))
            for workers in args.api_workers:
                for code, code_env in codes:
                    with api_server(code_env, folder, workers) as api:
                        rounds = [asyncio.run(enqueue(api, headers, args.requests, args.concurrency))
                                  for _ in range(args.enqueue_rounds)]
                        open_loop = [asyncio.run(enqueue_at_rate(api, headers, rate, args.open_loop_s, args.concurrency))
                                     for rate in args.rates]
                    broker.flushdb()  # the queued jobs and records, so every variant starts from an empty Redis
                    enqueue_variants.append({"code": code, "api_workers": workers, "rounds": rounds,
                                             **enqueue_summary(rounds), "open_loop": open_loop})
    finally:
        broker.flushdb()  # the queued jobs and their transient state; the records died with moto
        broker.close()
    return {"end_to_end": latency, "enqueue": enqueue_variants}


def export_tree(commit: str, folder: Path) -> Path:
    """The package as it was at ``commit``, as ``<returned folder>/savgan``: first on ``PYTHONPATH``,
    it is imported instead of this checkout (the editable install's finder comes after the path)."""
    root = folder / f"baseline-{commit}"
    (root / "savgan").mkdir(parents=True)
    repo = Path(__file__).resolve().parents[1]
    archive = subprocess.run(["git", "-C", str(repo), "archive", commit], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(root / "savgan")], input=archive, check=True)
    return root


@dataclass
class Api:
    """A running API: its base URL and its processes' CPU time so far."""

    url: str
    cpu_s: Callable[[], float]


def group_cpu_s(pgid: int) -> float:
    """User + system CPU seconds of every live process in the process group (uvicorn and its workers)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid:  # fields after the name: state, ppid, pgrp, ...; utime, stime at 11, 12
                total += int(fields[11]) + int(fields[12])
    return total / ticks


@contextlib.contextmanager
def api_server(env: dict[str, str], folder: Path, workers: int) -> Iterator[Api]:
    """``savgan serve`` with ``workers`` uvicorn processes, once it answers (``/livez``: readiness
    also needs a Celery worker, which the enqueue runs leave stopped)."""
    port = free_port()
    log = folder / f"api-{workers}-{port}.log"
    command = savgan_command("serve", "--port", str(port))
    with process(command, {**env, "SAVGAN_API_WORKERS": str(workers)}, log) as api:
        base = f"http://127.0.0.1:{port}"
        wait_ok(f"{base}/livez", api, log)
        yield Api(base, lambda: group_cpu_s(api.pid))


def enqueue_summary(rounds: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Median and range over rounds of the figures the targets name."""
    def spread(values: list[float]) -> dict[str, float]:
        return {"median": round(float(np.median(values)), 4), "min": min(values), "max": max(values)}

    return {
        "throughput_rps": spread([r["throughput_rps"] for r in rounds]),
        "p50_s": spread([r["latency_s"]["p50"] for r in rounds]),
        "p99_s": spread([r["latency_s"]["p99"] for r in rounds]),
    }


def machine() -> dict[str, Any]:
    """What the figures depend on; the load average says whether other work shared the cores."""
    with redis.Redis() as client:
        redis_version = client.info("server")["redis_version"]
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "redis_server": redis_version,
        "packages": {name: metadata.version(name) for name in PACKAGES},
    }


def print_table(results: dict[str, Any]) -> None:
    print(f"\nend to end, POST /generate -> downloaded OME-TIFF ({results['frames']} frames, {results['runs']} warm runs), s")
    print(f"{'mode':12} {'cold':>7} {'p50':>7} {'p95':>7} {'min':>7} {'max':>7} | {'submit':>7} {'queued':>7} {'run':>7} {'download':>8}  (p50)")
    for mode in ("embedded", "distributed"):
        e2e = results[mode]["end_to_end"]
        total = e2e["total_s"]
        print(f"{mode:12} {e2e['cold_s']:7.3f} {total['p50']:7.3f} {total['p95']:7.3f} {total['min']:7.3f} {total['max']:7.3f} | "
              f"{e2e['submit_s']['p50']:7.3f} {e2e['queued_s']['p50']:7.3f} {e2e['run_s']['p50']:7.3f} {e2e['download_s']['p50']:8.3f}")
    print(f"\nenqueue, POST /generate, distributed, {results['concurrency']} connections")
    print(f"{'code':18} {'API procs':>9} {'load':12} {'req/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'max ms':>8} "
          f"{'API CPU ms':>10} {'client CPU':>10} failures")
    variants = results["distributed"]["enqueue"]
    for variant in variants:
        rows = [(f"closed #{i}", r["throughput_rps"], r) for i, r in enumerate(variant["rounds"], 1)]
        rows += [(f"open {r['offered_rps']:g}/s", r["achieved_rps"], r) for r in variant["open_loop"]]
        for label, rate, r in rows:
            lat = r["latency_s"]
            print(f"{variant['code']:18} {variant['api_workers']:9d} {label:12} {rate:8.1f} {lat['p50'] * 1e3:8.1f} "
                  f"{lat['p95'] * 1e3:8.1f} {lat['p99'] * 1e3:8.1f} {lat['max'] * 1e3:8.1f} "
                  f"{r['api_cpu_ms_per_request']:10.2f} {r['client_cpu_ms_per_request']:10.2f} {r['failures'] or '-'}")
    current = [v for v in variants if v["code"] == "current"]
    best = min(v["p99_s"]["median"] for v in current)
    at_100 = [r["latency_s"]["p99"] for v in current for r in v["open_loop"] if r["offered_rps"] == 100]
    print(f"\ntargets: end-to-end p50 < 1 s (embedded {results['embedded']['end_to_end']['total_s']['p50']:.3f}, "
          f"distributed {results['distributed']['end_to_end']['total_s']['p50']:.3f}); "
          f"enqueue p99 < 50 ms with {results['concurrency']} closed-loop clients (best median of rounds {best * 1e3:.1f} ms); "
          f"open loop 100/s p99 <= 50 ms ({', '.join(f'{p * 1e3:.1f} ms' for p in at_100) or 'not run'})")


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",")]


def _floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="warm end-to-end jobs per mode")
    parser.add_argument("--frames", type=int, default=32, help="frames of each video (the bundled model's clip is 16)")
    parser.add_argument("--poll-s", type=float, default=0.05, help="GET /jobs/{id} interval: the end-to-end resolution")
    parser.add_argument("--requests", type=int, default=1000, help="POST /generate per enqueue round")
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--enqueue-rounds", type=int, default=3)
    parser.add_argument("--api-workers", type=_ints, default=[1, 2], help="comma list of SAVGAN_API_WORKERS to compare")
    parser.add_argument("--rates", type=_floats, default=[25.0, 50.0, 100.0], help="open-loop arrival rates, requests/s")
    parser.add_argument("--open-loop-s", type=float, default=10.0, help="duration of each open-loop run")
    parser.add_argument("--baseline", help="a commit whose API also runs the enqueue loads, for before/after")
    parser.add_argument("--redis-db", type=int, default=13, help="a db of the local Redis this run may flush")
    parser.add_argument("--torch-threads", type=int, default=1, help="OMP_NUM_THREADS of the servers and workers")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "service.json")
    args = parser.parse_args()

    results: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        **{k: getattr(args, k) for k in ("runs", "frames", "poll_s", "requests", "concurrency", "torch_threads")},
    }
    with tempfile.TemporaryDirectory(prefix="savgan-bench-") as tmp:
        folder = Path(tmp)
        results["embedded"] = embedded(args, folder)
        results["distributed"] = distributed(args, folder)
    print_table(results)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
