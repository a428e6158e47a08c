"""Style-transfer scores: an output lies between its photo and its painting on both axes."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from brushwork.errors import BrushworkError
from brushwork.judge.scores import (
    StyleScorer,
    colour_histogram_distance,
    image_files,
    mean_covariance_distance,
    score_outputs,
)
from brushwork.media import load_image
from tests.conftest import make_image

EXAMPLES = Path(__file__).resolve().parents[1] / "brushwork" / "examples"


@pytest.fixture(scope="module")
def lite0():
    from brushwork.backbones import load_backbone

    return load_backbone("lite0")


def test_a_stylised_output_lies_between_its_photo_and_its_painting(lite0):
    from brushwork.style.feedforward import apply_feedforward, load_feedforward

    photo = load_image(EXAMPLES / "tubingen.jpg")
    painting = load_image(EXAMPLES / "starry_night.jpg")
    net, _ = load_feedforward(EXAMPLES / "starry_night-fast.safetensors")
    output = apply_feedforward(net, [photo], image_size=192)[0]
    scorer = StyleScorer(photo, painting, lite0, size=192)
    as_photo, as_output, as_painting = (scorer.score(img) for img in (photo, output, painting))
    assert as_photo.content_distance < 1e-9 < as_output.content_distance < as_painting.content_distance
    for axis in ("style_distance", "gram_distance", "colour_distance"):
        assert getattr(as_painting, axis) < getattr(as_output, axis) < getattr(as_photo, axis), axis
    assert as_output.artfid_lite0 == pytest.approx((1 + as_output.content_distance) * (1 + as_output.style_distance))


def test_score_outputs_takes_folders_and_sorts_best_first(tmp_path, tiny_net):
    outs = tmp_path / "outs"
    outs.mkdir()
    content, style = tmp_path / "c.png", tmp_path / "s.png"
    make_image(48, 32, 0, "gradient").save(content)
    make_image(48, 32, 1, "stripes").save(style)
    make_image(48, 32, 0, "gradient").save(outs / "same-as-photo.png")
    make_image(48, 32, 5, "noise").save(outs / "noise.png")
    (outs / "notes.txt").write_text("not an image")
    scores = score_outputs([outs], content, style, tiny_net, size=48)
    assert [Path(s.path).name for s in scores] == ["same-as-photo.png", "noise.png"]
    assert scores[0].artfid_lite0 <= scores[1].artfid_lite0
    with pytest.raises(BrushworkError, match="no such file"):
        image_files([tmp_path / "absent"])
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(BrushworkError, match="nothing to score"):
        image_files([empty])


def test_distances_are_zero_for_identical_inputs_and_grow_with_difference():
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(500, 6, generator=gen, dtype=torch.float64)
    assert mean_covariance_distance(a, a) < 1e-9
    assert mean_covariance_distance(a + 0.1, a) < mean_covariance_distance(a + 1.0, a)
    img = torch.rand(1, 3, 64, 64, generator=gen)
    assert colour_histogram_distance(img, img) == 0
    assert colour_histogram_distance(img, img * 0.2) > 0.5


def test_videos_get_flicker_and_temporal_error_beside_the_style_figures(tmp_path, images, tiny_net):
    pytest.importorskip("av")
    from brushwork.style.video import write_frames

    frames = [make_image(48, 32, 0, "gradient").rotate(i, fillcolor="white") for i in range(6)]
    source, steady, flickering = tmp_path / "src.mp4", tmp_path / "steady.mp4", tmp_path / "flicker.mp4"
    write_frames(frames, source)
    write_frames(frames, steady)
    write_frames([f if i % 2 else make_image(48, 32, i, "noise") for i, f in enumerate(frames)], flickering)
    scores = {Path(s.path).name: s for s in score_outputs([steady, flickering], source, images["style"], tiny_net, 48)}
    assert scores["steady.mp4"].flicker < 1.5 < scores["flicker.mp4"].flicker
    assert scores["steady.mp4"].temporal_error < scores["flicker.mp4"].temporal_error
    with pytest.raises(BrushworkError, match="must be videos"):
        score_outputs([images["content"]], source, images["style"], tiny_net, 48)
