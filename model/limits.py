"""Limits a request is checked against before anything heavy loads (torch-free, for the CLI's early checks)."""

MAX_FRAMES = 1024


def check_frames(frames: int) -> None:
    if not 1 <= frames <= MAX_FRAMES:
        raise ValueError(f"frames must be between 1 and {MAX_FRAMES}, got {frames}")
