"""Shapes and operations of the three networks, as SPEC section 3 lists them."""

import pytest
import torch
from torch import nn

from savgan.model.attention import SelfAttention3d
from savgan.model.config import AttentionSpec, ModelConfig, preset
from savgan.model.networks import ImageCritic, VideoCritic, VideoGenerator, sample_latents


def stage_shapes(generator: VideoGenerator, z: torch.Tensor) -> list[tuple[int, ...]]:
    x = generator.seed(z[..., None, None])
    shapes = [tuple(x.shape[1:])]
    for stage in generator.stages:
        x = stage(x, None)
        shapes.append(tuple(x.shape[1:]))
    shapes.append(tuple(generator.to_video(x).shape[1:]))
    return shapes


def test_paper_generator_stages():
    torch.manual_seed(0)
    g = VideoGenerator(preset("paper"))
    with torch.no_grad():
        shapes = stage_shapes(g, torch.randn(1, 128, 1))
    assert shapes == [(256, 2, 4, 4), (128, 4, 8, 8), (64, 8, 16, 16), (32, 16, 32, 32), (1, 32, 64, 64)]
    attention = [stage.attention for stage in g.stages]
    assert attention[0] is None
    assert [a.spec.kind for a in attention[1:]] == ["nystrom", "nystrom"]
    assert attention[1].query.out_channels == 8 and attention[2].query.out_channels == 4
    assert all(a.spec.landmarks == 512 for a in attention[1:])


def test_paper_generator_operations():
    g = VideoGenerator(preset("paper"))
    seed_conv = g.seed[0]
    assert isinstance(seed_conv, nn.ConvTranspose3d) and seed_conv.kernel_size == (2, 4, 4)
    assert isinstance(g.seed[1], nn.InstanceNorm3d) and isinstance(g.seed[2], nn.ReLU)
    for stage in g.stages:
        conv = stage.up[0]
        assert conv.kernel_size == (4, 4, 4) and conv.stride == (2, 2, 2) and conv.padding == (1, 1, 1)
        assert hasattr(conv, "parametrizations") and "weight" in conv.parametrizations  # spectral norm
        assert isinstance(stage.up[1], nn.InstanceNorm3d) and isinstance(stage.up[2], nn.ReLU)
    assert isinstance(g.to_video[1], nn.Tanh)


def test_generator_output_range_and_long_latent_sequences():
    torch.manual_seed(0)
    g = VideoGenerator(preset("cpu")).eval()
    with torch.no_grad():
        clip = g(torch.randn(2, 128))
        long = g(torch.randn(1, 128, 5))
    assert clip.shape == (2, 1, 16, 32, 32)
    assert long.shape == (1, 1, 48, 32, 32)  # (5 + 1) * 8 frames
    assert clip.abs().max() <= 1.0 and clip.std() > 0.01


def test_paper_video_critic_shapes():
    torch.manual_seed(0)
    d = VideoCritic(preset("paper"))
    x = torch.randn(2, 1, 32, 64, 64)
    h = d.stem(x)
    shapes = [tuple(h.shape[1:])]
    for block, attention in zip(d.blocks, d.attentions):
        h = attention(block(h))
        shapes.append(tuple(h.shape[1:]))
    assert shapes == [(32, 31, 32, 32), (64, 15, 16, 16), (128, 7, 8, 8), (256, 3, 4, 4)]
    assert tuple(d.score(h).shape[1:]) == (1, 1, 2, 2)
    kinds = [a.spec.kind if isinstance(a, SelfAttention3d) else None for a in d.attentions]
    assert kinds == [None, "full", "full"]
    assert d.stem[0].stride == (1, 2, 2) and isinstance(d.stem[1], nn.LeakyReLU) and d.stem[1].negative_slope == 0.1
    assert d(x).shape == (2,)


def test_paper_image_critic_shapes():
    d = ImageCritic(preset("paper"))
    x = torch.randn(3, 1, 64, 64)
    shapes = []
    for layer in d.net:
        x = layer(x)
        if isinstance(layer, nn.Conv2d):
            shapes.append(tuple(x.shape[1:]))
            assert layer.kernel_size == (3, 3)
    assert shapes == [(64, 32, 32), (128, 16, 16), (256, 8, 8), (512, 8, 8), (1, 8, 8)]
    assert sum(isinstance(m, nn.InstanceNorm2d) for m in d.net) == 3
    assert all(m.negative_slope == 0.2 for m in d.net if isinstance(m, nn.LeakyReLU))


def test_3dgan_ablation_has_no_attention_and_otherwise_the_same_convolutions():
    full, ablated = VideoGenerator(preset("paper")), VideoGenerator(preset("paper-3dgan"))
    assert not any(isinstance(m, SelfAttention3d) for m in ablated.modules())
    conv_shapes = lambda net: [p.shape for n, p in net.named_parameters() if "attention" not in n]  # noqa: E731
    assert conv_shapes(full) == conv_shapes(ablated)


def test_config_round_trips_and_rejects_bad_shapes():
    cfg = preset("paper")
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="frames must be size/2"):
        ModelConfig(size=64, frames=16)
    with pytest.raises(ValueError, match="power of two"):
        ModelConfig(size=48, frames=24)
    with pytest.raises(ValueError, match="unknown preset"):
        preset("huge")
    with pytest.raises(ValueError, match="attention kind"):
        AttentionSpec("sparse")


def test_uniform_latents_stay_in_range_and_normal_latents_are_gaussian():
    g = torch.Generator().manual_seed(0)
    uniform = sample_latents(ModelConfig(z_distribution="uniform"), 64, 2, generator=g)
    normal = sample_latents(ModelConfig(), 64, 2, generator=g)
    assert uniform.shape == (64, 128, 2) and uniform.abs().max() <= 1.0 and uniform.min() < -0.9
    assert abs(normal.std().item() - 1.0) < 0.05 and normal.abs().max() > 2.5
