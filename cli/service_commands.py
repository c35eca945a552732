"""``savgan serve`` and ``savgan worker``: kept apart so the API image (no torch) can run them."""

from __future__ import annotations

import argparse


def serve(args: argparse.Namespace) -> None:
    from savgan.service.server import serve as run_server

    run_server(args.host, args.port, embedded=args.embedded)


def worker(args: argparse.Namespace) -> None:
    from savgan.worker.main import run_worker

    run_worker(args.queues, args.concurrency, args.loglevel)
