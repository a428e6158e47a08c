"""Class consistency: a user's ONNX classifier checks that a conditional generator draws the class asked for."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from brushwork.errors import BrushworkError
from brushwork.judge.classes import class_consistency

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")


class BrightnessClassifier(nn.Module):
    """Class 0 = dark, class 1 = bright; takes one channel at 16x16, values -1..1."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = x.mean(dim=(1, 2, 3))
        return torch.stack([-m, m], dim=1)


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    path = tmp_path_factory.mktemp("clf") / "brightness.onnx"
    torch.onnx.export(BrightnessClassifier().eval(), (torch.rand(2, 1, 16, 16),), str(path), input_names=["image"],
                      dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=1024)},))  # fmt: skip
    return path


def test_class_consistency_counts_samples_seen_as_their_class(classifier):
    dark, bright = torch.full((6, 3, 24, 24), 0.1), torch.full((6, 3, 24, 24), 0.9)  # colour, other size
    images = torch.cat([dark, bright])
    labels = [0] * 6 + [1] * 6
    result = class_consistency(classifier, images, labels, ["night", "day"], value_range=(-1, 1), batch=5)
    assert result["class_consistency"] == 1.0 and result["per_class"] == {"night": 1.0, "day": 1.0}
    assert result["samples"] == 12 and len(result["classifier_sha256"]) == 64
    swapped = class_consistency(classifier, images, [1] * 6 + [0] * 6, value_range=(-1, 1))
    assert swapped["class_consistency"] == 0.0
    half = class_consistency(classifier, images, [0] * 12, value_range=(-1, 1))
    assert half["per_class"] == {"0": 0.5}


def test_bad_classifier_input(tmp_path, classifier):
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not onnx")
    with pytest.raises(BrushworkError, match="not an ONNX model"):
        class_consistency(junk, torch.rand(2, 1, 16, 16), [0, 1])
    with pytest.raises(BrushworkError, match="one label for each"):
        class_consistency(classifier, torch.rand(2, 1, 16, 16), [0])
    with pytest.raises(BrushworkError, match="one per class"):
        class_consistency(classifier, torch.rand(2, 1, 16, 16), [0, 5])


def test_gan_evaluate_reports_class_consistency_with_a_protocol(classifier, tmp_path, capsys):
    import json

    from brushwork.cli import main
    from brushwork.gan.data import load_dataset
    from brushwork.gan.train import train_gan
    from tests.test_gan import config_for, write_classes

    data = load_dataset(str(write_classes(tmp_path / "d")), conditional=True)
    train_gan(data, tmp_path / "run", config_for(data, steps=2, eval_every=0))
    argv = ["gan", "evaluate", str(tmp_path / "run"), "--samples", "12", "--extractor", "lite0"]
    assert main([*argv, "--classifier", str(classifier), "--classifier-range", "-1", "1"]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert 0 <= figures["class_consistency"] <= 1 and set(figures["per_class"]) == {"bright", "dark"}
    assert figures["samples"] == 12 and figures["classifier"] == "brightness.onnx"
    protocol = figures["protocol"]
    assert protocol["extractor"] == "lite0" and protocol["generated"] == 12 and protocol["classes"] == 2

    plain = load_dataset(str(write_classes(tmp_path / "e")), conditional=False)
    train_gan(plain, tmp_path / "plain", config_for(plain, conditional=False, steps=2, eval_every=0))
    assert main(["gan", "evaluate", str(tmp_path / "plain"), "--samples", "12", "--classifier", str(classifier)]) == 2
    assert "conditional run" in capsys.readouterr().err
