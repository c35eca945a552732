"""Generation: reproducible from a seed, any length, continuous across trained-length stretches."""

import math

import numpy as np
import pytest
import torch

from savgan.model.attention import QUERY_BLOCK, query_blocks
from savgan.model.config import AttentionSpec, ModelConfig
from savgan.model.continuity import seam_continuity
from savgan.model.generate import BATCH_CLIPS, MAX_FRAMES, generate_videos, latent_steps_for, video_seed
from savgan.model.networks import VideoGenerator, sample_latents

SMALL = ModelConfig(
    size=32,
    frames=16,
    g_conv_dim=8,
    g_attention=(AttentionSpec("full"), AttentionSpec("nystrom", landmarks=64)),
)


@pytest.fixture(scope="module")
def generator() -> VideoGenerator:
    torch.manual_seed(0)
    g = VideoGenerator(SMALL)
    for stage in g.stages:
        stage.attention.gamma.data.fill_(0.5)  # make attention (and its landmarks) matter
    return g


def test_same_seed_same_video_and_index_independent_of_count(generator):
    """Same request: the same bits. Another count: the same videos up to batched-kernel rounding."""
    a = generate_videos(generator, seed=11, frames=16, count=3)
    b = generate_videos(generator, seed=11, frames=16, count=1)
    c = generate_videos(generator, seed=12, frames=16, count=1)
    assert a.shape == (3, 16, 32, 32) and a.dtype == np.float32
    assert np.array_equal(a, generate_videos(generator, seed=11, frames=16, count=3))
    np.testing.assert_allclose(a[0], b[0], rtol=0, atol=1e-5)
    assert not np.allclose(a[0], c[0]) and not np.allclose(a[0], a[1])
    assert np.abs(a).max() <= 1.0


def test_a_batched_video_equals_the_same_video_generated_alone(generator):
    """Per-sample latents and landmarks: batching must not change which video index i is."""
    batched = generate_videos(generator, seed=5, frames=16, count=4, batch_clips=4)
    alone = generate_videos(generator, seed=5, frames=16, count=4, batch_clips=1)
    np.testing.assert_allclose(batched, alone, rtol=0, atol=1e-5)


def test_generation_equals_a_plain_forward_with_the_video_seed(generator):
    """Cached spectral norm and the batching path give the bits of an uncached eval forward."""
    rng = torch.Generator().manual_seed(video_seed(9, 2))
    z = sample_latents(SMALL, 1, 1, generator=rng)
    with torch.no_grad():
        expected = generator.eval()(z, landmark_generator=rng)[0, 0].numpy()
    video = generate_videos(generator, seed=9, frames=16, count=3, batch_clips=1)[2]
    assert np.array_equal(video, expected)


def test_spectral_norm_is_computed_once_per_call_not_once_per_forward(generator):
    calls = []
    norms = [stage.up[0].parametrizations.weight[0] for stage in generator.stages]
    handles = [norm.register_forward_hook(lambda *_: calls.append(1)) for norm in norms]
    try:
        generate_videos(generator, seed=0, frames=16, count=3, batch_clips=1)
    finally:
        for handle in handles:
            handle.remove()
    assert len(calls) == len(norms)


def test_long_requests_are_split_into_fewer_videos_per_forward(generator):
    """Four 24-frame videos (2 latent steps) at 4 clips per forward: 2 forwards of 2, progress per video."""
    sizes, progress = [], []
    handle = generator.register_forward_hook(lambda module, inputs, output: sizes.append(output.shape[0]))
    try:
        generate_videos(generator, 0, 24, count=4, batch_clips=4, on_video=lambda d, n: progress.append((d, n)))
    finally:
        handle.remove()
    assert sizes == [2, 2]
    assert progress == [(1, 4), (2, 4), (3, 4), (4, 4)]


@pytest.mark.parametrize("frames", [1, 7, 16, 17, 100])
def test_any_frame_count(generator, frames):
    video = generate_videos(generator, seed=0, frames=frames)
    assert video.shape == (1, frames, 32, 32)


def test_latent_steps_cover_the_request():
    assert latent_steps_for(SMALL, 1) == 1 and latent_steps_for(SMALL, 16) == 1
    assert latent_steps_for(SMALL, 17) == 2 and latent_steps_for(SMALL, 24) == 2
    assert (latent_steps_for(SMALL, 1024) + 1) * SMALL.frames_per_latent >= 1024
    with pytest.raises(ValueError, match=f"between 1 and {MAX_FRAMES}"):
        latent_steps_for(SMALL, MAX_FRAMES + 1)
    with pytest.raises(ValueError, match="between 1"):
        latent_steps_for(SMALL, 0)


def test_long_videos_have_no_seams(generator):
    video = generate_videos(generator, seed=3, frames=160, count=2)
    report = seam_continuity(video, stretch=SMALL.frames)
    assert report.seams == 9
    assert report.ratio < 1.5, report


def moving_blob(start: float, frames: int = 16, speed: float = 0.5) -> np.ndarray:
    y, x = np.mgrid[:32, :32]
    centres = start + speed * np.arange(frames)
    return np.stack([np.exp(-((x - c) ** 2 + (y - 16) ** 2) / 18.0) for c in centres]).astype(np.float32)


def test_seam_measure_catches_pasted_clips_and_passes_continuous_motion():
    continuous = moving_blob(2.0, frames=48)
    assert abs(seam_continuity(continuous, stretch=16).ratio - 1.0) < 0.05
    pasted = np.concatenate([moving_blob(s) for s in (2.0, 20.0, 6.0)])
    assert seam_continuity(pasted, stretch=16).ratio > 5


def test_seam_measure_needs_two_stretches():
    with pytest.raises(ValueError, match="more than one stretch"):
        seam_continuity(np.zeros((16, 4, 4)), stretch=16)


def test_generation_of_the_maximum_length_runs(generator):
    video = generate_videos(generator, seed=0, frames=MAX_FRAMES)
    assert video.shape == (1, MAX_FRAMES, 32, 32) and np.isfinite(video).all()


def test_query_blocks_fold_the_remainder_into_the_last_block():
    assert query_blocks(2 * QUERY_BLOCK - 1) == [(0, 2 * QUERY_BLOCK - 1)]
    assert query_blocks(2 * QUERY_BLOCK) == [(0, QUERY_BLOCK), (QUERY_BLOCK, 2 * QUERY_BLOCK)]
    assert query_blocks(2 * QUERY_BLOCK + 5) == [(0, QUERY_BLOCK), (QUERY_BLOCK, 2 * QUERY_BLOCK + 5)]


@pytest.mark.parametrize("attention, frames", [("nystrom", 160), ("full", 72)])
def test_progress_inside_a_forward_gives_the_same_bits(generator, attention, frames):
    """A long video reports blocks of its attention's queries, and is the video made without reporting."""
    if attention == "full":  # the bundled models': exact attention at the last, largest stage too
        torch.manual_seed(1)
        generator = VideoGenerator(ModelConfig(size=32, frames=16, g_conv_dim=8, g_attention=(AttentionSpec("full"),) * 2))
        for stage in generator.stages:
            stage.attention.gamma.data.fill_(0.5)
    reports = []
    reported = generate_videos(generator, 4, frames, count=2, on_attention=lambda done, total: reports.append((done, total)))
    assert np.array_equal(reported, generate_videos(generator, 4, frames, count=2))
    steps = latent_steps_for(generator.config, frames)
    last_stage_tokens = (steps + 1) * 4 * 16 * 16  # T x 16 x 16 per video
    forwards = math.ceil(2 / max(1, BATCH_CLIPS // steps))  # videos share a forward while they fit
    assert [done for done, total in reports if total == last_stage_tokens] == [
        end for _, end in query_blocks(last_stage_tokens)
    ] * forwards
