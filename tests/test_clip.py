"""Style by words: the CLIP objective on a tiny random CLIP (open_clip config + shipped tokenizer), or, where
open_clip cannot be installed, on a stand-in with CLIP's interface."""

import numpy as np
import pytest
import torch

import brushwork
from brushwork.errors import BrushworkError
from brushwork.media import image_to_tensor
from brushwork.records import record_of
from brushwork.style import clip_guidance
from brushwork.style.clip_guidance import ClipObjective, ClipSettings, build_clip, check_text
from brushwork.style.gatys import GatysEngine, StyleConfig
from tests.conftest import import_open_clip, make_image

open_clip = import_open_clip()
needs_open_clip = pytest.mark.skipif(open_clip is None, reason="open_clip is not installed")

TINY = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "patch_size": 8, "head_width": 32},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2},
}
TEXT = "a watercolour with warm, loose strokes"


class StandInClip(torch.nn.Module):
    """Not CLIP: a tiny random model with CLIP's interface (an image tower and a text tower into one
    embedding space), so the objective and the engine's use of it are tested where open_clip is absent."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.visual = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 4, 4), torch.nn.Tanh(), torch.nn.Conv2d(16, 32, 3),
                                          torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())  # fmt: skip
        self.visual.image_size = 32
        self.text = torch.nn.EmbeddingBag(256, 32)

    def encode_image(self, x: torch.Tensor) -> torch.Tensor:
        return self.visual(x)

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.text(tokens)


class ByteTokenizer:
    """UTF-8 bytes as tokens, padded to CLIP's context."""

    context_length = 77

    def encode(self, text: str) -> list[int]:
        return list(text.encode())

    def __call__(self, texts: list[str]) -> torch.Tensor:
        rows = [self.encode(t)[: self.context_length] for t in texts]
        return torch.tensor([r + [0] * (self.context_length - len(r)) for r in rows])


@pytest.fixture(scope="module")
def tiny_clip():
    if open_clip is not None:
        return build_clip(TINY)
    return clip_guidance.Clip.wrap(StandInClip(), ByteTokenizer(), "custom", "random")


def test_gradients_flow_and_the_loss_falls(tiny_clip):
    content = image_to_tensor(make_image(48, 40, 0))
    objective = ClipObjective(tiny_clip, ClipSettings(TEXT, crops=4, threshold=0.0), content, seed=0, fresh_crops=False)
    image = (content + 0.05 * torch.randn_like(content)).clamp(0, 1).requires_grad_(True)
    optimizer = torch.optim.Adam([image], lr=0.02)
    losses = []
    for _ in range(30):
        image.grad = None
        loss, parts = objective(image)
        assert image.grad is not None and image.grad.abs().sum() > 0 and set(parts) == {"clip", "clip_patch"}
        losses.append(loss.item())
        optimizer.step()
    assert losses[-1] < 0.8 * losses[0]
    assert not any(p.requires_grad for p in tiny_clip.model.parameters())  # CLIP itself stays frozen


def test_fixed_crops_make_a_deterministic_objective(tiny_clip):
    content = image_to_tensor(make_image(48, 40, 0))
    image = torch.rand_like(content)
    objective = ClipObjective(tiny_clip, ClipSettings(TEXT), content, seed=3, fresh_crops=False)
    assert objective(image)[0].item() == objective(image)[0].item()
    fresh = ClipObjective(tiny_clip, ClipSettings(TEXT), content, seed=3, fresh_crops=True)
    assert fresh(image)[0].item() != fresh(image)[0].item()


def test_text_alone_and_with_image_styles_and_masks(tiny_net, tiny_clip):
    content, style = make_image(48, 32, 0), make_image(48, 32, 1, "stripes")
    seen = []
    engine = GatysEngine(tiny_net)
    cfg = StyleConfig(image_size=48, iterations=4, style_text=TEXT, clip_crops=2)
    alone = engine.run(content, [], cfg, on_step=lambda s: seen.append({k: float(v) for k, v in s.losses.items()}),
                       clip=tiny_clip)  # fmt: skip
    assert {"clip", "clip_patch", "content", "style"} <= set(seen[-1])
    # The text pulls the picture its way: visibly with CLIP; the stand-in's direction is met by changes
    # below one grey level, so there the term itself must fall.
    if open_clip is not None:
        assert np.abs(np.asarray(alone, int) - np.asarray(content, int)).max() > 0
    else:
        assert seen[-1]["clip"] < 0.5 * seen[0]["clip"]
    seen.clear()
    for tile in (0, 16):  # composes with style images, whole or in tiles
        cfg = StyleConfig(image_size=48, iterations=3, style_text=TEXT, clip_crops=2, tile=tile)
        engine.run(content, [style], cfg, on_step=lambda s: seen.append(s.losses), clip=tiny_clip)
        assert seen[-1]["style"] > 0 and seen[-1]["clip"] > 0


def test_api_records_the_text(tiny_net, tiny_clip):
    out = brushwork.stylize(make_image(48, 32), backbone=tiny_net, clip=tiny_clip, style_text=TEXT, image_size=32,
                            iterations=2, clip_crops=2)  # fmt: skip
    record = record_of(out)
    assert record.parameters["style_text"] == TEXT and record.models["clip"] == {"name": "custom", "weights": "random"}
    assert record.inputs["styles"] == []


def test_bad_text(tiny_clip):
    for text in ("", "   "):
        with pytest.raises(BrushworkError, match="empty"):
            check_text(text, tiny_clip.tokenizer)
    with pytest.raises(BrushworkError, match="tokens; CLIP reads at most 75"):
        check_text("very " * 100, tiny_clip.tokenizer)
    with pytest.raises(BrushworkError, match="characters"):
        check_text("x" * 5000, tiny_clip.tokenizer)
    with pytest.raises(BrushworkError, match="needs a CLIP model"):
        GatysEngine(torch.nn.Identity()).run(make_image(), [], StyleConfig(style_text=TEXT))


def test_weight_files_on_the_stand_in(tmp_path):
    """Reading and fitting a weights file is brushwork's own (no unpickling): tested without open_clip."""
    from safetensors.torch import save_file

    good = tmp_path / "clip.safetensors"
    save_file({k: v.contiguous() for k, v in StandInClip().state_dict().items()}, good)
    fresh = StandInClip()
    torch.nn.init.zeros_(fresh.text.weight)
    clip_guidance._load_weights(fresh, good, "stand-in")
    assert torch.equal(fresh.text.weight, StandInClip().text.weight)
    wrapped = tmp_path / "ddp.pt"  # saved from a DDP wrapper, inside a "state_dict" entry
    torch.save({"state_dict": {f"module.{k}": v for k, v in StandInClip().state_dict().items()}}, wrapped)
    clip_guidance._load_weights(fresh, wrapped, "stand-in")
    other = StandInClip()
    other.text = torch.nn.EmbeddingBag(256, 16)  # another embedding width: the wrong shape
    with pytest.raises(BrushworkError, match="do not fit CLIP stand-in .*size mismatch for text.weight"):
        clip_guidance._load_weights(other, good, "stand-in")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not weights")
    with pytest.raises(BrushworkError, match="not a readable weights file"):
        clip_guidance._load_weights(fresh, junk, "stand-in")
    pickled = tmp_path / "pickled.pt"
    torch.save({"weights": StandInClip().state_dict(), "hook": ByteTokenizer()}, pickled)
    with pytest.raises(BrushworkError, match="never unpickles"):
        clip_guidance._load_weights(fresh, pickled, "stand-in")
    numbers = tmp_path / "numbers.pt"
    torch.save({"step": 3}, numbers)
    with pytest.raises(BrushworkError, match="no plain state dict"):
        clip_guidance._load_weights(fresh, numbers, "stand-in")


@needs_open_clip
def test_weight_files(tmp_path, tiny_clip, monkeypatch):
    from safetensors.torch import save_file

    good = tmp_path / "tiny.safetensors"
    save_file({k: v.contiguous() for k, v in tiny_clip.model.state_dict().items()}, good)
    other = build_clip({**TINY, "embed_dim": 16})
    with pytest.raises(BrushworkError, match="do not fit CLIP"):
        clip_guidance._load_weights(other.model, good, "tiny")
    fresh = build_clip(TINY, seed=1)
    clip_guidance._load_weights(fresh.model, good, "tiny")
    assert all(torch.equal(a, b) for a, b in zip(fresh.model.state_dict().values(),
                                                 tiny_clip.model.state_dict().values(), strict=True))  # fmt: skip
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"not weights")
    with pytest.raises(BrushworkError, match="not a readable weights file"):
        clip_guidance._load_weights(fresh.model, junk, "tiny")
    with pytest.raises(BrushworkError, match="no such CLIP weights"):
        clip_guidance.load_clip(weights=tmp_path / "missing.safetensors")
    with pytest.raises(BrushworkError, match="unknown CLIP model"):
        clip_guidance.load_clip("ViT-Nonsense")


@needs_open_clip
def test_offline_without_weights_is_one_line(tmp_path, monkeypatch):
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "try_to_load_from_cache", lambda *a, **k: None)
    monkeypatch.setattr(clip_guidance, "_reachable", lambda host, timeout=3.0: False)
    with pytest.raises(BrushworkError, match="--clip-weights") as err:
        clip_guidance.load_clip()
    assert "\n" not in str(err.value) and "huggingface" in str(err.value)
