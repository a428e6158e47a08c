"""Text-guided style through transformers' CLIPModel (#20): no open_clip, no torchvision.

A tiny random CLIP (its config, weights and a byte-level tokenizer) is written as a folder the way
``save_pretrained`` leaves one, and used through ``--clip-model FOLDER``, the path users take.
"""

from __future__ import annotations

import json
import sys

import pytest
import torch

transformers = pytest.importorskip("transformers")

from brushwork.cli import main  # noqa: E402
from brushwork.errors import BrushworkError  # noqa: E402
from brushwork.records import read_record  # noqa: E402
from tests.conftest import make_image  # noqa: E402


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's printable stand-ins for the 256 bytes, which CLIP's byte-level BPE uses."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars, extra = list(printable), 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(printable, map(chr, chars), strict=True))


@pytest.fixture(scope="module", autouse=True)
def no_torchvision():
    """As in the product's own install: no torchvision. (test_clip.py may have imported open_clip beside the
    tests' torchvision shim; transformers would take that shim for torchvision.)"""
    from transformers.utils import import_utils

    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(sys.modules, "torchvision", None)  # find_spec("torchvision") is None again
        import_utils.is_torchvision_available.cache_clear()  # transformers keeps the first answer
        yield
    import_utils.is_torchvision_available.cache_clear()


@pytest.fixture(scope="module")
def tiny_clip_folder(tmp_path_factory):
    from transformers import CLIPConfig, CLIPModel, CLIPTokenizer

    folder = tmp_path_factory.mktemp("tiny-clip")
    chars = list(_bytes_to_unicode().values())
    vocab = {c: i for i, c in enumerate(chars)} | {c + "</w>": len(chars) + i for i, c in enumerate(chars)}
    start, end = len(vocab), len(vocab) + 1
    vocab |= {"<|startoftext|>": start, "<|endoftext|>": end}
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")  # no merges: one token per character
    tokenizer = CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"))
    layers = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2}
    config = CLIPConfig(
        text_config={**layers, "vocab_size": len(vocab), "max_position_embeddings": 77, "bos_token_id": start,
                     "eos_token_id": end, "pad_token_id": end},
        vision_config={**layers, "image_size": 32, "patch_size": 8},
        projection_dim=16,
    )  # fmt: skip
    torch.manual_seed(0)
    CLIPModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture
def no_open_clip(monkeypatch):
    """As in the product's own install: open_clip cannot be imported (its torchvision does not load)."""
    monkeypatch.setitem(sys.modules, "open_clip", None)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def test_style_text_with_a_transformers_clip_folder(tiny_clip_folder, no_open_clip, tmp_path, capsys):
    photo, out = tmp_path / "photo.png", tmp_path / "out.png"
    make_image(48, 32).save(photo)
    argv = ["stylize", str(photo), "--style-text", "a watercolour of autumn leaves", "--clip-model",
            str(tiny_clip_folder), "--backbone", "lite0", "--image-size", "32", "--iterations", "2",
            "--clip-crops", "2", "-o", str(out), "-q"]  # fmt: skip
    assert main(argv) == 0, capsys.readouterr().err
    record = read_record(out)
    assert record.parameters["style_text"] == "a watercolour of autumn leaves"
    assert record.models["clip"]["weights"] == "transformers"


def test_the_clip_objective_moves_the_picture(tiny_clip_folder, no_open_clip):
    from brushwork.style.clip_guidance import ClipObjective, ClipSettings, load_clip

    clip = load_clip(str(tiny_clip_folder))
    assert clip.image_size == 32 and clip.identity.startswith("transformers:")
    content = torch.rand(1, 3, 40, 48)
    objective = ClipObjective(clip, ClipSettings("oil paint", crops=2), content, seed=0, fresh_crops=False)
    image = content.clone()
    loss, parts = objective(image)
    assert torch.isfinite(loss) and set(parts) == {"clip", "clip_patch"}
    assert image.grad is not None and image.grad.abs().sum() > 0  # the words pull on the pixels
    too_long = "word " * 80
    with pytest.raises(BrushworkError, match="tokens; CLIP reads at most 75"):
        objective.clip.encode_text(too_long)


@pytest.mark.parametrize("model", ["openai/clip-vit-base-patch32", "ViT-B-32"])
def test_missing_weights_offline_are_one_line(model, no_open_clip, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    photo = tmp_path / "photo.png"
    make_image(48, 32).save(photo)
    argv = ["stylize", str(photo), "--style-text", "fire", "--clip-model", model, "--backbone", "lite0",
            "--image-size", "32", "--iterations", "1", "-o", str(tmp_path / "o.png"), "-q"]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("brushwork: error: ") and err.count("\n") == 1
    assert "openai/clip-vit-base-patch32 is not in the Hugging Face cache" in err and "hf download" in err
    assert not (tmp_path / "o.png").exists()


def test_a_folder_that_is_not_a_clip_is_one_line(tmp_path, no_open_clip, capsys):
    folder = tmp_path / "not-clip"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    photo = tmp_path / "photo.png"
    make_image(48, 32).save(photo)
    argv = ["stylize", str(photo), "--style-text", "fire", "--clip-model", str(folder), "--backbone", "lite0",
            "--image-size", "32", "--iterations", "1", "-o", str(tmp_path / "o.png"), "-q"]  # fmt: skip
    assert main(argv) == 2
    assert "not a transformers CLIP folder" in capsys.readouterr().err
