import pytest
import torch

from brushwork.style.lbfgs import DeviceLBFGS


def problem():
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(40, 40, generator=gen, dtype=torch.float64)
    a = a @ a.T / 40 + 0.1 * torch.eye(40, dtype=torch.float64)
    b = torch.randn(40, generator=gen, dtype=torch.float64)
    return lambda x: 0.5 * x @ a @ x - b @ x + 0.1 * (x**4).sum()  # convex, not quadratic


def run_torch(f, evaluations, history):
    x = torch.zeros(40, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([x], lr=1, max_iter=evaluations, max_eval=evaluations, history_size=history,
                            tolerance_grad=-1, tolerance_change=-1)  # fmt: skip

    def closure():
        opt.zero_grad()
        loss = f(x)
        loss.backward()
        return loss

    opt.step(closure)
    return x.detach()


def run_device(f, evaluations, history):
    x = torch.zeros(40, dtype=torch.float64, requires_grad=True)
    calls = []

    def closure():
        x.grad = None
        loss = f(x)
        loss.backward()
        calls.append(1)
        return loss

    DeviceLBFGS(x, history=history).run(closure, evaluations)
    assert len(calls) == evaluations
    return x.detach()


@pytest.mark.parametrize(("evaluations", "history"), [(1, 100), (2, 100), (10, 100), (25, 100), (12, 3)])
def test_same_iterates_as_torch_lbfgs(evaluations, history):
    """The compact form on a ring buffer gives the two-loop recursion's iterates, the history wrap included."""
    f = problem()
    expected = run_torch(f, evaluations, history)
    assert torch.allclose(run_device(f, evaluations, history), expected, atol=1e-10, rtol=0)
    if evaluations > 1:
        assert not torch.equal(expected, torch.zeros(40, dtype=torch.float64))


def test_rejected_pairs_do_not_break_it():
    """A flat stretch gives pairs that fail the curvature test; they are stored as zeros, never as NaN."""
    x = torch.ones(8, requires_grad=True)

    def closure():
        x.grad = None
        loss = torch.where(x.abs() < 0.5, torch.zeros_like(x), (x.abs() - 0.5) ** 2).sum()
        loss.backward()
        return loss

    opt = DeviceLBFGS(x, history=4)
    opt.run(closure, 15)
    assert not opt.valid.all()  # some pair was rejected
    assert torch.isfinite(x).all() and (x.abs() <= 0.5 + 1e-6).all()


def test_channels_last_image_takes_the_same_steps():
    """An image in channels-last memory (as on CUDA) is read and moved in its own layout: the same iterates."""
    gen = torch.Generator().manual_seed(1)
    target = torch.rand(1, 3, 5, 7, generator=gen, dtype=torch.float64)
    weights = torch.rand(1, 3, 5, 7, generator=gen, dtype=torch.float64) + 0.5

    def solve(memory_format):
        x = torch.zeros(1, 3, 5, 7, dtype=torch.float64).contiguous(memory_format=memory_format).requires_grad_()

        def closure():
            x.grad = None
            loss = (weights * (x - target) ** 2).sum() + 0.1 * (x**4).sum()
            loss.backward()
            return loss

        DeviceLBFGS(x, history=4).run(closure, 12)
        return x.detach()

    plain, channels_last = solve(torch.contiguous_format), solve(torch.channels_last)
    assert torch.allclose(plain, channels_last, atol=1e-12, rtol=0)
    assert (plain - target).abs().max() < 0.2  # it moved towards the minimum


def test_strided_image_is_refused():
    x = torch.zeros(4, 6)[:, ::2].requires_grad_()
    with pytest.raises(ValueError, match="contiguous"):
        DeviceLBFGS(x)
