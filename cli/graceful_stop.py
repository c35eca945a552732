"""Ctrl-C (or ``docker stop``'s SIGTERM) during ``savgan train``: finish the step, checkpoint, exit.

A training step takes seconds and a checkpoint is written only every N steps, so killing
the process loses up to N steps; the first signal instead asks the loop to stop after the
current step (TrainHooks.should_stop), which writes a checkpoint and a sample montage. A
second Ctrl-C aborts at once, for when even one step is too long to wait.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextmanager
def stop_after_step() -> Iterator[Callable[[], bool]]:
    """Yield a ``should_stop`` poll that turns True after the first SIGINT/SIGTERM."""
    requested = False

    def handle(signum: int, frame: FrameType | None) -> None:
        nonlocal requested
        if requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        requested = True
        print(
            f"\nsavgan train: {signal.Signals(signum).name} received; stopping after this step with a "
            "checkpoint (Ctrl-C again to abort without one)",
            file=sys.stderr,
        )

    previous = {signum: signal.signal(signum, handle) for signum in SIGNALS}
    try:
        yield lambda: requested
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
