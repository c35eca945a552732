"""The attention maths: Nystrom against exact, the pseudo-inverse, the flash path, gradients."""

import math

import pytest
import torch
from torch.profiler import profile

from savgan.model.attention import (
    SelfAttention3d,
    choose_landmarks,
    exact_attention,
    flash_attention,
    iterations_applied_to_values,
    iterative_pinv,
    nystrom_attention,
    pinv_times,
)
from savgan.model.config import AttentionSpec


def relative_error(approx: torch.Tensor, exact: torch.Tensor) -> float:
    return ((approx - exact).norm() / exact.norm()).item()


def smooth_tokens(batch: int, frames: int, side: int, dim: int, seed: int) -> torch.Tensor:
    """Features that vary smoothly over a T x H x W grid, as conv features of a video do."""
    g = torch.Generator().manual_seed(seed)
    t, y, x = torch.meshgrid(
        torch.linspace(0, 1, frames), torch.linspace(0, 1, side), torch.linspace(0, 1, side), indexing="ij"
    )
    coords = torch.stack([t, y, x], dim=-1).reshape(-1, 3)
    freqs = torch.randn(batch, 3, dim, generator=g) * 2.0
    phases = torch.rand(batch, 1, dim, generator=g) * 2 * math.pi
    return torch.sin(coords @ freqs + phases)


def test_pinv_converges_to_the_inverse_of_a_softmax_matrix():
    g = torch.Generator().manual_seed(0)
    a = torch.softmax(torch.randn(3, 32, 32, generator=g, dtype=torch.float64), dim=-1)
    exact = torch.linalg.inv(a)
    errors = [relative_error(iterative_pinv(a, n), exact) for n in (2, 6, 12, 40)]
    assert errors == sorted(errors, reverse=True), errors
    assert errors[-1] < 1e-8
    assert relative_error(a @ iterative_pinv(a, 40) @ a, a) < 1e-10


def test_nystrom_with_every_token_as_landmark_equals_exact_attention():
    g = torch.Generator().manual_seed(2)
    q, k = (torch.randn(2, 96, 4, generator=g, dtype=torch.float64) for _ in range(2))
    v = torch.randn(2, 96, 32, generator=g, dtype=torch.float64)
    approx = nystrom_attention(q, k, v, landmarks=96, pinv_iterations=40)
    assert relative_error(approx, exact_attention(q, k, v)) < 1e-4


def test_nystrom_error_at_the_paper_size_is_bounded_on_structured_inputs():
    """N = 2048 (8x16x16), d = 8, m = 512: the paper's first generator layer."""
    q = smooth_tokens(1, 8, 16, 8, seed=3)
    k = smooth_tokens(1, 8, 16, 8, seed=4)
    v = smooth_tokens(1, 8, 16, 64, seed=5)
    exact = exact_attention(q, k, v)
    gen = torch.Generator().manual_seed(0)
    err_512 = relative_error(nystrom_attention(q, k, v, 512, generator=gen), exact)
    err_64 = relative_error(nystrom_attention(q, k, v, 64, generator=gen), exact)
    print(f"Nystrom relative error, N=2048: m=512 {err_512:.4f}, m=64 {err_64:.4f}")
    assert err_512 < 0.05
    assert err_512 < err_64


def test_per_sample_landmark_generators_give_each_sample_its_own_landmarks():
    """A batch with one generator per sample equals each sample run alone with its generator."""
    g = torch.Generator().manual_seed(8)
    q, k = (torch.randn(3, 200, 4, generator=g) for _ in range(2))
    v = torch.randn(3, 200, 16, generator=g)
    batched = nystrom_attention(q, k, v, 32, generator=[torch.Generator().manual_seed(s) for s in (1, 2, 3)])
    for i, s in enumerate((1, 2, 3)):
        one = slice(i, i + 1)
        alone = nystrom_attention(q[one], k[one], v[one], 32, generator=torch.Generator().manual_seed(s))
        assert torch.allclose(batched[i : i + 1], alone, atol=1e-5)
    shared = nystrom_attention(q, k, v, 32, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(shared[:1], batched[:1], atol=1e-5) and not torch.allclose(shared[1:], batched[1:], atol=1e-3)
    with pytest.raises(ValueError, match="2 landmark generators for a batch of 3"):
        nystrom_attention(q, k, v, 32, generator=[torch.Generator(), torch.Generator()])


@pytest.mark.parametrize(("size", "width", "applied"), [(16, 48, 0), (64, 16, 1), (64, 8, 2), (128, 4, 3)])
def test_pinv_times_values_equals_the_formed_pinv_times_values(size, width, applied):
    """Applying the last iterates to the values is the same maths as forming them, gradients too."""
    assert iterations_applied_to_values(6, size, width) == applied
    g = torch.Generator().manual_seed(10)
    a = torch.softmax(torch.randn(2, size, size, generator=g, dtype=torch.float64), dim=-1).requires_grad_(True)
    values = torch.randn(2, size, width, generator=g, dtype=torch.float64, requires_grad=True)
    weights = torch.randn(2, size, width, generator=g, dtype=torch.float64)
    applied_out = pinv_times(a, values, 6)
    formed_out = iterative_pinv(a, 6) @ values
    assert relative_error(applied_out, formed_out) < 1e-12
    applied_grads = torch.autograd.grad((applied_out * weights).sum(), (a, values))
    formed_grads = torch.autograd.grad((formed_out * weights).sum(), (a, values))
    for applied_grad, formed_grad in zip(applied_grads, formed_grads):
        assert relative_error(applied_grad, formed_grad) < 1e-10


def test_nystrom_through_flash_equals_nystrom_through_formed_kernels():
    g = torch.Generator().manual_seed(11)
    q, k = (torch.randn(2, 300, 4, generator=g, dtype=torch.float64, requires_grad=True) for _ in range(2))
    v = torch.randn(2, 300, 32, generator=g, dtype=torch.float64, requires_grad=True)
    outs, grads = [], []
    for attend in (flash_attention, exact_attention):
        out = nystrom_attention(q, k, v, 40, generator=torch.Generator().manual_seed(0), attend=attend)
        outs.append(out)
        grads.append(torch.autograd.grad(out.square().sum(), (q, k, v)))
    assert relative_error(outs[0], outs[1]) < 1e-12
    for flash_grad, exact_grad in zip(*grads):
        assert relative_error(flash_grad, exact_grad) < 1e-10


def test_nystrom_matches_finite_differences():
    g = torch.Generator().manual_seed(6)
    q, k = (torch.randn(1, 12, 3, generator=g, dtype=torch.float64, requires_grad=True) for _ in range(2))
    v = torch.randn(1, 12, 5, generator=g, dtype=torch.float64, requires_grad=True)

    def fn(q, k, v):
        return nystrom_attention(q, k, v, landmarks=6, generator=torch.Generator().manual_seed(0))

    assert torch.autograd.gradcheck(fn, (q, k, v), eps=1e-6, atol=1e-5)


@pytest.mark.parametrize("attend", [flash_attention, exact_attention])
def test_nystrom_never_builds_an_n_by_n_tensor(attend):
    """Record every saved-for-backward tensor: none may have N*N elements; through flash,
    none is even N x m (only N x C inputs and outputs), through exact attention the N x m
    kernels are kept."""
    n, m, c = 4096, 256, 32
    q, k = (torch.randn(1, n, 4, requires_grad=True) for _ in range(2))
    v = torch.randn(1, n, c, requires_grad=True)
    largest = 0

    def pack(t):
        nonlocal largest
        largest = max(largest, t.numel())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = nystrom_attention(q, k, v, m, attend=attend)
    out.sum().backward()
    assert largest < n * n / 8, largest
    if attend is flash_attention:
        assert largest <= n * c, largest
    else:
        assert largest >= n * m, largest


def test_nystrom_forward_backward_at_the_paper_second_layer():
    """N = 16384 (16x32x32), C = 32, batch 4: the layer the paper could not afford exactly."""
    block = SelfAttention3d(32, AttentionSpec("nystrom"))
    block.gamma.data.fill_(0.5)
    x = torch.randn(4, 32, 16, 32, 32, requires_grad=True)
    block(x).square().mean().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert block.gamma.grad.abs().item() > 0


def test_flash_attention_is_exact_and_takes_the_flash_kernel():
    g = torch.Generator().manual_seed(7)
    q, k = (torch.randn(2, 512, 8, generator=g) for _ in range(2))
    v = torch.randn(2, 512, 64, generator=g)
    with profile() as prof:
        out = flash_attention(q, k, v)
    names = {event.key for event in prof.key_averages()}
    assert "aten::_scaled_dot_product_flash_attention_for_cpu" in names, names
    assert "aten::_scaled_dot_product_attention_math" not in names
    assert relative_error(out, exact_attention(q, k, v)) < 1e-5


def test_landmarks_are_reproducible_from_a_seed_and_vary_without_one():
    a = choose_landmarks(1000, 50, torch.Generator().manual_seed(9), torch.device("cpu"))
    b = choose_landmarks(1000, 50, torch.Generator().manual_seed(9), torch.device("cpu"))
    c = choose_landmarks(1000, 50, None, torch.device("cpu"))
    assert torch.equal(a, b)
    assert len(set(a.tolist())) == 50
    assert not torch.equal(a, c)
    assert torch.equal(choose_landmarks(10, 50, None, torch.device("cpu")), torch.arange(10))


@pytest.mark.parametrize("kind", ["nystrom", "full"])
def test_twice_differentiable_block_supports_a_gradient_penalty(kind):
    """A critic's gradient penalty backpropagates through d(out)/dx: flash has no double backward."""
    torch.manual_seed(12)
    block = SelfAttention3d(16, AttentionSpec(kind, landmarks=16), twice_differentiable=True)
    block.gamma.data.fill_(0.5)
    x = torch.randn(2, 16, 2, 4, 4, requires_grad=True)
    (grad_x,) = torch.autograd.grad(block(x, torch.Generator().manual_seed(0)).square().sum(), x, create_graph=True)
    grad_x.norm().backward()
    assert block.query.weight.grad is not None and block.query.weight.grad.abs().sum().item() > 0


@pytest.mark.parametrize("kind", ["nystrom", "full"])
def test_attention_block_starts_as_identity_and_learns_gamma(kind):
    block = SelfAttention3d(16, AttentionSpec(kind, landmarks=32))
    x = torch.randn(2, 16, 4, 8, 8)
    assert torch.equal(block(x), x)
    block(x).sum().backward()
    assert block.gamma.grad is not None and block.gamma.grad.abs().item() > 0
    block.gamma.data.fill_(1.0)
    assert not torch.allclose(block(x), x)


def test_full_block_equals_exact_attention_through_the_block():
    torch.manual_seed(0)
    block = SelfAttention3d(16, AttentionSpec("full"))
    block.gamma.data.fill_(1.0)
    x = torch.randn(1, 16, 2, 4, 4)
    q = block.query(x).flatten(2).transpose(1, 2)
    k = block.key(x).flatten(2).transpose(1, 2)
    v = block.value(x).flatten(2).transpose(1, 2)
    expected = x + exact_attention(q, k, v).transpose(1, 2).reshape(x.shape)
    assert torch.allclose(block(x), expected, atol=1e-5)
