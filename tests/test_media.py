import io

import numpy as np
import pytest
from PIL import Image

from brushwork.errors import BrushworkError
from brushwork.files import check_output_path
from brushwork.media import (
    image_to_tensor,
    load_image,
    resize_long_side,
    tensor_to_image,
)
from tests.conftest import make_image


def test_modes_all_become_rgb(tmp_path):
    base = make_image(20, 10)
    cases = {
        "cmyk.jpg": base.convert("CMYK"),
        "grey.png": base.convert("L"),
        "palette.png": base.convert("P"),
        "rgba.png": base.convert("RGBA"),
        "la.png": base.convert("LA"),
    }
    for name, img in cases.items():
        img.save(tmp_path / name)
        out = load_image(tmp_path / name)
        assert out.mode == "RGB" and out.size == (20, 10), name


def test_sixteen_bit_keeps_its_range(tmp_path):
    arr = (np.linspace(0, 65535, 200).reshape(10, 20)).astype(np.uint16)
    Image.fromarray(arr).save(tmp_path / "deep.png")
    out = np.asarray(load_image(tmp_path / "deep.png"))
    assert out.min() == 0 and out.max() == 255  # scaled, not clipped to white


def test_transparent_pixels_become_white(tmp_path):
    img = Image.new("RGBA", (4, 4), (255, 0, 0, 0))
    img.save(tmp_path / "clear.png")
    assert load_image(tmp_path / "clear.png").getpixel((0, 0)) == (255, 255, 255)


def test_exif_rotation_is_applied(tmp_path):
    img = make_image(30, 10)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise when shown
    img.save(tmp_path / "rotated.jpg", exif=exif)
    assert load_image(tmp_path / "rotated.jpg").size == (10, 30)


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_corrupt_files_give_clear_error(tmp_path, damage):
    buf = io.BytesIO()
    make_image(64, 64, kind="noise").save(buf, "JPEG")
    data = {
        "truncate": buf.getvalue()[: len(buf.getvalue()) // 2],
        "garbage": b"not an image at all" * 10,
        "empty": b"",
    }[damage]
    path = tmp_path / "bad.jpg"
    path.write_bytes(data)
    with pytest.raises(BrushworkError, match="bad.jpg"):
        load_image(path)


def test_decompression_bomb_is_refused(tmp_path):
    make_image(200, 200).save(tmp_path / "big.png")
    with pytest.raises(BrushworkError, match="too large"):
        load_image(tmp_path / "big.png", max_pixels=10_000)
    # Between 1x and 2x the limit Pillow only warns; we still refuse.
    with pytest.raises(BrushworkError, match="too large"):
        load_image(tmp_path / "big.png", max_pixels=30_000)
    assert load_image(tmp_path / "big.png", max_pixels=40_000).size == (200, 200)


def test_missing_and_folder_inputs(tmp_path):
    with pytest.raises(BrushworkError, match="no such file"):
        load_image(tmp_path / "nope.png")
    with pytest.raises(BrushworkError, match="folder"):
        load_image(tmp_path)


def test_output_checks(tmp_path):
    with pytest.raises(BrushworkError, match="does not exist"):
        check_output_path(tmp_path / "missing" / "out.png")
    with pytest.raises(BrushworkError, match=".png"):
        check_output_path(tmp_path / "out.jpg")
    (tmp_path / "out.png").write_bytes(b"x")
    with pytest.raises(BrushworkError, match="--force"):
        check_output_path(tmp_path / "out.png")
    assert check_output_path(tmp_path / "out.png", force=True)


def test_tensor_round_trip_and_resize():
    img = make_image(40, 20, kind="noise")
    assert np.array_equal(np.asarray(tensor_to_image(image_to_tensor(img))), np.asarray(img))
    assert resize_long_side(img, 10).size == (10, 5)
