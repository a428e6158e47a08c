"""NNPACK Winograd convolutions for frozen VGG layers on the CPU: same results, right fallbacks."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from brushwork.backbones import winograd
from brushwork.backbones.vgg import VGG
from brushwork.backbones.winograd import WinogradConv2d, nnpack_ready, set_winograd
from brushwork.style.tiling import probe_memory

needs_nnpack = pytest.mark.skipif(not nnpack_ready(), reason="this PyTorch has no NNPACK")


@pytest.fixture
def nnpack_calls(monkeypatch):
    calls = []
    real = torch._nnpack_spatial_convolution

    def counting(*args):
        calls.append(tuple(args[0].shape))
        return real(*args)

    monkeypatch.setattr(torch, "_nnpack_spatial_convolution", counting)
    monkeypatch.setattr(winograd, "_mode", "on")
    monkeypatch.setattr(winograd, "_nnpack_faster", {})
    return calls


def _frozen_conv(cin=8, cout=16, seed=0) -> WinogradConv2d:
    torch.manual_seed(seed)
    return WinogradConv2d(cin, cout).requires_grad_(False)


def _reference(conv, x):
    x = x.detach().clone().requires_grad_(True)
    out = F.conv2d(x, conv.weight, conv.bias, padding=1)
    return out, x


@needs_nnpack
def test_forward_and_input_gradient_match_direct_convolution(nnpack_calls):
    conv = _frozen_conv()
    x = torch.randn(1, 8, 50, 70, requires_grad=True)
    upstream = torch.randn(1, 16, 50, 70)
    out = conv(x)
    out.backward(upstream)
    ref, x_ref = _reference(conv, x)
    ref.backward(upstream)
    assert nnpack_calls == [(1, 8, 50, 70), (1, 16, 50, 70)]  # forward, then the input gradient
    assert torch.allclose(out, ref, rtol=1e-4, atol=1e-4 * ref.abs().max().item())
    assert torch.allclose(x.grad, x_ref.grad, rtol=1e-4, atol=1e-4 * x_ref.grad.abs().max().item())


@needs_nnpack
def test_new_weights_are_picked_up(nnpack_calls):
    conv = _frozen_conv()
    x = torch.randn(1, 8, 48, 48, requires_grad=True)
    conv(x).sum().backward()
    conv.load_state_dict(_frozen_conv(seed=1).state_dict())
    x.grad = None
    conv(x).sum().backward()
    ref, x_ref = _reference(conv, x)
    ref.sum().backward()
    assert torch.allclose(x.grad, x_ref.grad, rtol=1e-4, atol=1e-4 * x_ref.grad.abs().max().item())


@pytest.mark.parametrize(
    "case",
    ["small map", "weights being trained", "float64", "switched off"],
    ids=str,
)
def test_falls_back_to_torch_convolution(case, nnpack_calls, monkeypatch):
    conv = _frozen_conv()
    x = torch.randn(1, 8, 64, 64)
    if case == "small map":
        x = torch.randn(1, 8, 24, 24)
    elif case == "weights being trained":
        conv.requires_grad_(True)
    elif case == "float64":
        conv, x = conv.double(), x.double()
    else:
        monkeypatch.setattr(winograd, "_mode", "off")
    out = conv(x)
    assert nnpack_calls == []
    assert torch.equal(out, F.conv2d(x, conv.weight, conv.bias, padding=1))
    if case == "weights being trained":
        out.sum().backward()
        assert conv.weight.grad is not None


def test_exported_graphs_use_the_standard_convolution(nnpack_calls):
    conv = _frozen_conv()
    program = torch.export.export(conv, (torch.randn(1, 8, 64, 64),))
    targets = {str(node.target) for node in program.graph.nodes}
    assert "aten.conv2d.default" in targets
    assert nnpack_calls == []


@needs_nnpack
def test_vgg_step_on_winograd_matches_direct(nnpack_calls):
    """A whole VGG-19 loss gradient, Winograd against direct: what the optimiser is fed."""
    torch.manual_seed(0)
    net = VGG(19).freeze()
    image = torch.rand(1, 3, 128, 128)

    def gradient():
        x = image.clone().requires_grad_(True)
        feats = net(x, ["relu2_1", "relu4_2"])
        sum(f.square().mean() for f in feats.values()).backward()
        return x.grad

    with_winograd = gradient()
    assert nnpack_calls, "the NNPACK path was not taken"
    set_winograd("off")
    direct = gradient()
    assert (with_winograd - direct).norm() / direct.norm() < 1e-3


@needs_nnpack
def test_memory_probe_counts_the_same_activations_and_the_workspace(nnpack_calls):
    """The tiler sizes tiles from the probe: NNPACK keeps no more activations (its backward needs no
    input), but needs a workspace."""
    net = VGG(19).freeze()
    layers = ["relu1_1", "relu3_1", "relu5_1"]
    with_winograd = probe_memory(net, layers, torch.device("cpu"))
    set_winograd("off")
    direct = probe_memory(net, layers, torch.device("cpu"))
    assert 0.9 * direct.saved <= with_winograd.saved <= direct.saved
    assert direct.scratch == 0
    # The probe is 64x64: conv1_2 (64 -> 64 channels) transforms 11x11 tiles of 8x8 in and out.
    assert with_winograd.scratch == pytest.approx(4 * 64 * 11 * 11 * (64 + 64) / 64**2)


@pytest.mark.parametrize("direct_s, nnpack_s, takes_nnpack", [(2.0, 1.0, True), (1.0, 2.0, False)])
def test_auto_mode_times_each_shape_once_and_keeps_the_faster(
    direct_s, nnpack_s, takes_nnpack, nnpack_calls, monkeypatch
):
    timings = []

    def fake_seconds(run):
        timings.append(run)
        return (direct_s, nnpack_s)[(len(timings) - 1) % 2]  # direct is timed first

    monkeypatch.setattr(winograd, "_seconds", fake_seconds)
    monkeypatch.setattr(winograd, "_mode", "auto")
    conv = _frozen_conv()
    for side in (64, 66, 64):  # 66x66 is within a factor of two of 64x64: the same timing
        conv(torch.randn(1, 8, side, side))
    assert len(timings) == 2
    assert len(nnpack_calls) == (3 if takes_nnpack else 0)
    conv(torch.randn(1, 8, 128, 128))  # four times the area: timed again
    assert len(timings) == 4


def test_mode_is_checked():
    with pytest.raises(ValueError):
        set_winograd("fast")


@pytest.mark.parametrize(
    ("code", "env", "expected"),
    [
        ("import brushwork", {}, "30000"),
        ("import brushwork", {"GOMP_SPINCOUNT": "5"}, "5"),
        ("import brushwork", {"OMP_WAIT_POLICY": "active"}, None),
        ("import torch, brushwork", {}, None),  # too late: libgomp has read its settings
    ],
)
def test_openmp_spin_is_shortened_only_before_torch_loads(code, env, expected):
    base = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}
    out = subprocess.run(
        [sys.executable, "-c", f"{code}; import os; print(os.environ.get('GOMP_SPINCOUNT'))"],
        capture_output=True, text=True, env={**base, **env}, check=True,
    )  # fmt: skip
    assert out.stdout.strip() == str(expected)


@needs_nnpack
def test_a_seed_gives_the_same_vgg_image_on_the_winograd_path(nnpack_calls):
    """The default rule is fixed and NNPACK splits its work the same way every time: bit-identical."""
    from brushwork.style.gatys import GatysEngine, StyleConfig
    from tests.conftest import make_image

    torch.manual_seed(0)
    engine = GatysEngine(VGG(19).freeze(), torch.device("cpu"))
    content, style = make_image(96, 80, 0, "gradient"), make_image(96, 80, 1, "stripes")
    cfg = StyleConfig(image_size=96, iterations=3, scales=[96], init="noise", seed=7)
    first, second = (torch.tensor(np.asarray(engine.run(content, [style], cfg))) for _ in range(2))
    assert nnpack_calls
    assert torch.equal(first, second)
