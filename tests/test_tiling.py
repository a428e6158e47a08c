"""Exact tiles: the tiled loss and gradient must equal the whole image's, for every backbone family."""

import dataclasses

import numpy as np
import pytest
import torch

from brushwork.backbones import winograd
from brushwork.backbones.lite0 import EfficientNetLite0
from brushwork.backbones.vgg import VGG
from brushwork.errors import BrushworkError
from brushwork.media import image_to_tensor
from brushwork.style import gatys, tiling
from brushwork.style.gatys import GatysEngine, StyleConfig
from brushwork.style.losses import content_loss, gram_matrix, style_loss, tv_loss
from brushwork.style.tiling import TiledObjective, choose_tile, plan_tiles
from tests.conftest import make_image

WEIGHTS = (1.0, 20.0, 1.0)


@pytest.fixture(autouse=True)
def direct_convolutions(monkeypatch):
    """Exactness is the tiling's claim, so both sides use direct convolutions: Winograd's rounding
    depends on where its own 6x6 blocks fall, which differs between a tile and the whole image."""
    monkeypatch.setattr(winograd, "_mode", "off")


def whole_image(net, image, content, style, content_layers, style_layers):
    """Loss parts and gradient the ordinary way, on the whole image."""
    with torch.no_grad():
        content_targets = net(content, content_layers)
        style_targets = {k: gram_matrix(v) for k, v in net(style, style_layers).items()}
    x = image.clone().requires_grad_(True)
    feats = net(x, list(dict.fromkeys(content_layers + style_layers)))
    parts = {
        "content": WEIGHTS[0] * content_loss(feats, content_targets),
        "style": WEIGHTS[1] * style_loss(feats, style_targets),
        "tv": WEIGHTS[2] * tv_loss(x),
    }
    sum(parts.values()).backward()
    return parts, x.grad, style_targets


def tiled(net, image, content, style_targets, content_layers, tile):
    x = image.clone().requires_grad_(True)
    objective = TiledObjective(net, content, style_targets, content_layers, WEIGHTS, tile)
    _, parts = objective(x)
    return parts, x.grad, objective


def inputs(height, width, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.rand(1, 3, height, width, generator=g) for _ in range(3)]


def random_vgg():
    torch.manual_seed(0)
    return VGG(16).freeze()


def random_lite0():
    torch.manual_seed(0)
    net = EfficientNetLite0()
    for m in net.modules():  # nonzero BN statistics, so padding mistakes would show
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
    return net.freeze()


@pytest.mark.parametrize(
    ("net_factory", "height", "width", "tile", "layers"),
    [
        ("tiny", 61, 53, 16, None),
        ("tiny", 43, 20, 4, None),  # the last strip owns no relu3_1 row (43 // 4 == 40 // 4)
        ("vgg16", 280, 201, 96, (["relu4_2"], ["relu1_1", "relu5_1"])),  # odd sides: pooling floors
        ("lite0", 576, 256, 192, None),  # sides multiples of its stride (TF "same" padding)
    ],
)
def test_tiles_give_the_whole_image_loss_and_gradient(tiny_net, net_factory, height, width, tile, layers):
    net = {"tiny": lambda: tiny_net, "vgg16": random_vgg, "lite0": random_lite0}[net_factory]()
    content_layers, style_layers = layers or (list(net.content_layers), list(net.style_layers))
    image, content, style = inputs(height, width)
    parts, grad, style_targets = whole_image(net, image, content, style, content_layers, style_layers)
    tiled_parts, tiled_grad, objective = tiled(net, image, content, style_targets, content_layers, tile)
    # Really cut: some tile sees neither the top nor the bottom edge, so its halo is tested.
    assert any(t.crop[0] > 0 and t.crop[1] < height for t in objective.tiles)
    for name in parts:
        assert tiled_parts[name].item() == pytest.approx(parts[name].item(), rel=1e-4)
    scale = grad.abs().max()
    assert scale > 0
    assert (tiled_grad - grad).abs().max() <= 1e-4 * scale


def test_a_short_halo_is_caught(tiny_net, monkeypatch):
    """The check above can fail: with too little halo the tile edges show in the gradient."""
    image, content, style = inputs(61, 53)
    layers = (list(tiny_net.content_layers), list(tiny_net.style_layers))
    _, grad, style_targets = whole_image(tiny_net, image, content, style, *layers)
    real = tiny_net.tile_geometry

    def short(names):
        return dataclasses.replace(real(names), halo=real(names).stride)

    monkeypatch.setattr(tiny_net, "tile_geometry", short)
    _, tiled_grad, _ = tiled(tiny_net, image, content, style_targets, layers[0], 16)
    assert (tiled_grad - grad).abs().max() > 1e-2 * grad.abs().max()


def test_geometry_of_vgg19():
    net = VGG(19)
    geometry = net.tile_geometry(list(net.content_layers + net.style_layers))
    assert geometry.stride == 16 and geometry.size_multiple == 1
    # conv5_1 sees 156 px, reaching 70 px beyond its own 16 px cell on each side.
    assert geometry.halo == 80
    assert geometry.layer_strides["relu4_2"] == 8


def test_plan_covers_every_pixel_once():
    geometry = VGG(19).tile_geometry(["relu5_1"])
    tiles = plan_tiles(300, 470, 128, geometry)
    owned = np.zeros((300, 470), int)
    for t in tiles:
        y0, y1, x0, x1 = t.own
        owned[y0:y1, x0:x1] += 1
        assert y0 % 16 == 0 and x0 % 16 == 0
        cy0, cy1, cx0, cx1 = t.crop
        assert 0 <= cy0 <= y0 and y1 <= cy1 <= 300 and 0 <= cx0 <= x0 and x1 <= cx1 <= 470
        assert cy0 % 16 == 0 and cx0 % 16 == 0
    assert (owned == 1).all()


def test_choose_tile():
    geometry = VGG(19).tile_geometry(["relu5_1"])
    assert choose_tile((512, 512), geometry, 6000.0, 6000 * 512 * 512) == 0
    tile = choose_tile((8192, 8192), geometry, 6000.0, 2**30)
    assert tile > 0 and tile % 16 == 0 and (tile + 2 * geometry.halo) ** 2 * 6000 <= 2**30


def test_engine_tiled_matches_untiled(tiny_net):
    content, style = make_image(48, 40, 0, "gradient"), make_image(48, 32, 1, "stripes")
    images = []
    for tile in (0, 16):
        cfg = StyleConfig(image_size=48, iterations=8, tile=tile)
        images.append(np.asarray(GatysEngine(tiny_net).run(content, [style], cfg)).astype(int))
    assert np.abs(images[0] - images[1]).max() <= 2


def test_lite0_tiles_round_the_working_size_and_keep_the_output_size():
    net = random_lite0()
    content, style = make_image(75, 50, 0, "gradient"), make_image(48, 48, 1, "stripes")
    out = GatysEngine(net).run(content, [style], StyleConfig(image_size=75, iterations=2, tile=32))
    assert out.size == (75, 50)


def test_memory_plan_shrinks_history_then_tiles(tiny_net, monkeypatch):
    engine = GatysEngine(tiny_net)
    layers = list(tiny_net.content_layers + tiny_net.style_layers)
    assert engine._plan_memory((512, 512), StyleConfig(), layers, 300) == (0, 100)
    monkeypatch.setattr(gatys, "available_memory", lambda device: 64 * 2**20)
    tile, history = engine._plan_memory((2048, 2048), StyleConfig(), layers, 300)
    assert history == gatys.MIN_LBFGS_HISTORY and tile > 0
    assert engine._plan_memory((2048, 2048), StyleConfig(tile=0), layers, 300) == (0, 100)


def test_bad_tile_options(tiny_net):
    with pytest.raises(BrushworkError, match="tile must be"):
        StyleConfig(tile=5).validate(1)
    with pytest.raises(BrushworkError, match="cannot be tiled"):
        GatysEngine(_untileable(tiny_net)).run(make_image(), [make_image()], StyleConfig(image_size=32, tile=16))


def _untileable(net):
    from brushwork.backbones.base import FeatureExtractor

    class NoTiles(FeatureExtractor):
        name = "opaque"
        layer_names, content_layers, style_layers = net.layer_names, net.content_layers, net.style_layers

        def __init__(self):
            super().__init__()
            self.inner = net

        def preprocess(self, image):
            return image

        def iter_layers(self, x):
            return self.inner.iter_layers(self.inner.preprocess(x))

    return NoTiles().freeze()


def test_tiled_gram_of_a_style_image(tiny_net):
    style = image_to_tensor(make_image(61, 45, 3, "noise"))
    layers = list(tiny_net.style_layers)
    whole = {k: gram_matrix(v) for k, v in tiny_net(style, layers).items()}
    parts = tiling.TiledFeatures(tiny_net, layers, tuple(style.shape[-2:]), 16).grams(style, layers)
    for name in layers:
        assert torch.allclose(parts[name], whole[name], rtol=1e-4, atol=1e-6)


def test_activation_estimate_counts_activations_once_and_not_weights():
    net = VGG(19).freeze()
    layers = list(net.content_layers + net.style_layers)
    probe = tiling.probe_memory(net, layers, torch.device("cpu"))
    per_pixel = probe.saved
    assert probe.scratch == 0  # this file's fixture keeps the direct convolutions
    # Two 64-channel float maps at full resolution alone are 512 B/px; VGG-19's 80 MB of weights
    # spread over the 64x64 probe would add ~12 kB/px if they were counted.
    assert 1000 < per_pixel < 3000
