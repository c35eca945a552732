"""Limits a request is checked against before anything heavy loads (torch-free, for the CLI's early checks)."""

MAX_FRAMES = 1024


def check_frames(frames: int, low: int = 1, name: str = "frames", why: str = "") -> None:
    """``frames`` within [low, MAX_FRAMES]; ``name`` and ``why`` word the message (the CLI: ``--frames``)."""
    if not low <= frames <= MAX_FRAMES:
        raise ValueError(f"{name} must be between {low} and {MAX_FRAMES}{why}, got {frames}")
