"""Style by words: a CLIP objective for the optimisation engine (after CLIPstyler, Kwon & Ye 2022).

Two terms pull the output's CLIP image embedding away from the photo's in the direction that the
text's embedding lies from a neutral source text ("a photo"):

- directional: 1 - cos(E_I(output) - E_I(photo), E_T(text) - E_T(source)) on the whole image;
- patch-wise: the same on random crops of the output (randomly flipped, rotated, sheared, like
  CLIPstyler's perspective augmentation, so the pixels cannot fool CLIP with one adversarial
  pattern), each against the whole photo's embedding, with crops already closer than ``threshold``
  left alone so the style spreads instead of piling up where it already is.

The engine keeps its content loss (and any style images' Gram loss) beside these, so the words
restyle the photo without erasing it. CLIP comes from transformers' ``CLIPModel``
(``pip install 'brushwork[clip]'``, no torchvision: a local folder or a repo in the Hugging Face
cache) or from ``open_clip`` (``brushwork[openclip]``, which needs a torchvision built for your torch).
Their code and tokenizers are on PyPI, the weights are not: ``load_clip`` takes them from the Hugging
Face cache (``~/.cache/huggingface/hub``, filled by one online run), a folder, or ``--clip-weights``.
"""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import torch
import torch.nn.functional as F

from brushwork.errors import BrushworkError
from brushwork.records import sha256_file

DEFAULT_MODEL = "ViT-B-32"
DEFAULT_PRETRAINED = "openai"
SOURCE_TEXT = "a photo"
MAX_TEXT_CHARS = 1000
#: CLIP's own input statistics (open_clip's OPENAI_DATASET_MEAN/STD); a model may carry others.
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def _open_clip():
    try:
        import open_clip
    except (ImportError, RuntimeError) as exc:  # RuntimeError: a torchvision built for another torch
        raise BrushworkError(
            "text guidance needs open_clip: pip install 'brushwork[clip]' (open_clip_torch, and a torchvision "
            f"built for your torch) ({exc})"
        ) from exc
    return open_clip


@dataclass
class Clip:
    """A CLIP model with its tokenizer and input size; frozen, in eval mode."""

    model: torch.nn.Module
    tokenizer: object
    name: str
    pretrained: str
    image_size: int
    mean: torch.Tensor
    std: torch.Tensor
    #: Names these exact weights (model and tag, or the weights file's hash) for caches; None: do not cache.
    identity: str | None = None

    @classmethod
    def wrap(cls, model: torch.nn.Module, tokenizer, name: str, pretrained: str, identity: str | None = None) -> Clip:
        model = model.eval().requires_grad_(False)
        size = model.visual.image_size
        size = size[0] if isinstance(size, (tuple, list)) else size
        cfg = getattr(model.visual, "preprocess_cfg", None) or {}
        mean = torch.tensor(cfg.get("mean", CLIP_MEAN)).view(1, 3, 1, 1)
        std = torch.tensor(cfg.get("std", CLIP_STD)).view(1, 3, 1, 1)
        return cls(model, tokenizer, name, pretrained, int(size), mean, std, identity)

    def to(self, device: torch.device | str) -> Clip:
        self.model, self.mean, self.std = self.model.to(device), self.mean.to(device), self.std.to(device)
        return self

    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in 0..1 -> unit embeddings; resized to CLIP's input size."""
        if images.shape[-2:] != (self.image_size, self.image_size):
            images = F.interpolate(images, size=(self.image_size, self.image_size), mode="bilinear",
                                   align_corners=False, antialias=True)  # fmt: skip
        x = (images - self.mean.to(images.dtype)) / self.std.to(images.dtype)
        return F.normalize(self.model.encode_image(x).float(), dim=-1)

    @torch.no_grad()
    def encode_text(self, text: str) -> torch.Tensor:
        check_text(text, self.tokenizer)
        tokens = self.tokenizer([text]).to(self.mean.device)
        return F.normalize(self.model.encode_text(tokens).float(), dim=-1)


def check_text(text: str, tokenizer) -> None:
    """Refuse what CLIP cannot read: empty text, or more tokens than its context holds."""
    if not text or not text.strip():
        raise BrushworkError("the style text is empty")
    if len(text) > MAX_TEXT_CHARS:
        raise BrushworkError(f"the style text is {len(text)} characters; CLIP reads a sentence or two")
    limit = getattr(tokenizer, "context_length", 77) - 2  # the start and end tokens
    if hasattr(tokenizer, "encode") and len(tokenizer.encode(text)) > limit:
        raise BrushworkError(f"the style text is {len(tokenizer.encode(text))} tokens; CLIP reads at most {limit}")


def load_clip(
    name: str = DEFAULT_MODEL,
    pretrained: str = DEFAULT_PRETRAINED,
    weights: str | os.PathLike | None = None,
    device: torch.device | str = "cpu",
) -> Clip:
    """open_clip model ``name`` with weights from ``weights`` (a .safetensors or state-dict file in open_clip's
    layout) or, without it, the ``pretrained`` tag from the Hugging Face cache (downloaded when online).

    ``name`` may instead be a transformers CLIP: a local folder (``config.json`` and weights, as
    ``save_pretrained`` or ``hf download`` leave it) or a Hugging Face repo ID (``openai/clip-vit-base-patch32``)
    read from the cache. That path needs only ``transformers``, no torchvision; it is also taken for
    OpenAI's weights of ViT-B-32, ViT-B-16 and ViT-L-14 when open_clip cannot be imported."""
    if weights is None and _is_transformers_name(name):
        return load_transformers_clip(name, device)
    try:
        open_clip = _open_clip()
    except BrushworkError:
        repo = OPENAI_REPOS.get(name) if pretrained == DEFAULT_PRETRAINED and weights is None else None
        if repo is None:
            raise
        return load_transformers_clip(repo, device)
    if name not in open_clip.list_models():
        raise BrushworkError(f"unknown CLIP model {name!r}; e.g. {DEFAULT_MODEL}, ViT-B-16, ViT-L-14")
    tag_cfg = open_clip.get_pretrained_cfg(name, pretrained) or {}
    if weights is not None:
        path = Path(weights)
        if not path.is_file():
            raise BrushworkError(f"{path}: no such CLIP weights file")
        source, identity = path.name, f"{name}@{sha256_file(path)}"
    else:
        if not tag_cfg:
            raise BrushworkError(
                f"open_clip has no weights tagged {pretrained!r} for {name}; see open_clip.list_pretrained()"
            )
        path = _cached_or_downloaded(open_clip, tag_cfg, name, pretrained)
        source, identity = pretrained, f"{name}/{pretrained}"
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # open_clip warns on the root logger that the model starts random: we load next
    try:
        # OpenAI's weights were trained with QuickGELU: a file of them needs it too.
        quick_gelu = bool(tag_cfg.get("quick_gelu"))
        model = open_clip.create_model(name, pretrained=None, device="cpu", force_quick_gelu=quick_gelu)
    finally:
        root.setLevel(level)
    _load_weights(model, path, name)
    return Clip.wrap(model, open_clip.get_tokenizer(name), name, source, identity).to(device)


#: OpenAI's CLIP weights as transformers publishes them, by open_clip's model name.
OPENAI_REPOS = {
    "ViT-B-32": "openai/clip-vit-base-patch32",
    "ViT-B-16": "openai/clip-vit-base-patch16",
    "ViT-L-14": "openai/clip-vit-large-patch14",
}


def _is_transformers_name(name: str) -> bool:
    """A local folder, or an ``org/name`` Hugging Face repo ID (open_clip's names have no slash)."""
    return Path(name).expanduser().is_dir() or (name.count("/") == 1 and not name.startswith(("/", ".", "~")))


class _TransformersClip(torch.nn.Module):
    """transformers' CLIPModel behind open_clip's names (``encode_image``, ``encode_text``, ``visual``)."""

    def __init__(self, model, mean, std):
        super().__init__()
        self.model = model
        size = model.config.vision_config.image_size
        # What Clip.wrap reads from open_clip's visual tower: the input size and normalisation.
        self.visual = SimpleNamespace(image_size=size, preprocess_cfg={"mean": mean, "std": std})

    def encode_image(self, pixels: torch.Tensor) -> torch.Tensor:
        pooled = self.model.vision_model(pixel_values=pixels).pooler_output
        return self.model.visual_projection(pooled)

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        pooled = self.model.text_model(input_ids=tokens).pooler_output
        return self.model.text_projection(pooled)


class _TransformersTokenizer:
    """open_clip's tokenizer interface (called on a list of texts -> ids; ``encode``; ``context_length``)."""

    def __init__(self, tokenizer, context_length: int):
        self.tokenizer, self.context_length = tokenizer, context_length

    def __call__(self, texts: list[str]) -> torch.Tensor:
        return self.tokenizer(texts, return_tensors="pt", padding=True, truncation=True,
                              max_length=self.context_length)["input_ids"]  # fmt: skip

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False)


def load_transformers_clip(source: str, device: torch.device | str = "cpu") -> Clip:
    """A transformers CLIP from a local folder or, offline, the Hugging Face cache; never a download here."""
    try:
        from transformers import AutoTokenizer, CLIPModel
        from transformers.utils import logging as hf_logging
    except ImportError as exc:
        raise BrushworkError(
            f"CLIP {source} needs transformers: pip install 'brushwork[clip]' (no torchvision needed) ({exc})"
        ) from exc
    hf_logging.disable_progress_bar()  # a bar per load on stderr; brushwork shows its own progress
    folder = Path(source).expanduser()
    where = str(folder.resolve()) if folder.is_dir() else source
    try:
        model = CLIPModel.from_pretrained(where, local_files_only=True)
        tokenizer = AutoTokenizer.from_pretrained(where, local_files_only=True)
    except (OSError, ValueError) as exc:  # transformers says "not found" as OSError (EnvironmentError)
        if folder.is_dir():
            first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
            raise BrushworkError(f"{folder}: not a transformers CLIP folder ({first})") from exc
        raise BrushworkError(
            f"CLIP {source} is not in the Hugging Face cache (~/.cache/huggingface/hub) and brushwork does not "
            f"download it: run 'hf download {source}' once online, or pass a folder holding it as --clip-model"
        ) from exc
    mean, std = CLIP_MEAN, CLIP_STD
    processor = Path(model.config.name_or_path) / "preprocessor_config.json"
    if processor.is_file():
        cfg = json.loads(processor.read_text())
        mean, std = tuple(cfg.get("image_mean", mean)), tuple(cfg.get("image_std", std))
    context = int(model.config.text_config.max_position_embeddings)
    identity = f"transformers:{_folder_identity(folder) if folder.is_dir() else source}"
    wrapped = _TransformersClip(model, mean, std)
    return Clip.wrap(wrapped, _TransformersTokenizer(tokenizer, context), source, "transformers", identity).to(device)


def _folder_identity(folder: Path) -> str:
    """The hashes of a folder's weights files: names these exact weights for the embedding caches."""
    files = sorted(p for p in folder.iterdir() if p.suffix in (".safetensors", ".bin"))
    return ",".join(sha256_file(p)[:16] for p in files) or str(folder.resolve())


def _cached_or_downloaded(open_clip, tag_cfg: dict, name: str, pretrained: str) -> Path:
    """The weights file of a pretrained tag: from the Hugging Face cache, else downloaded there when the hub is
    reachable, else one line saying how to get it (no minute of retries offline)."""
    from huggingface_hub import try_to_load_from_cache

    repo, filename = os.path.split(tag_cfg.get("hf_hub", ""))  # "org/name/" or "org/name/file", as open_clip has it
    for candidate in ("open_clip_model.safetensors", filename or "open_clip_pytorch_model.bin"):
        cached = try_to_load_from_cache(repo, candidate) if repo else None
        if isinstance(cached, str):
            return Path(cached)
    where = f"huggingface.co/{repo}" if repo else tag_cfg.get("url", "its URL")
    if _reachable("huggingface.co"):
        try:
            return Path(open_clip.pretrained.download_pretrained(tag_cfg))
        except Exception as exc:  # noqa: BLE001 - the hub client raises many kinds; one line for the user
            raise BrushworkError(f"could not download CLIP {name}/{pretrained} from {where} ({exc})") from exc
    raise BrushworkError(
        f"CLIP weights {name}/{pretrained} are not in the Hugging Face cache (~/.cache/huggingface/hub) and the hub "
        f"is out of reach: run once online, or download open_clip_model.safetensors from {where} and pass "
        "--clip-weights FILE"
    )


def _reachable(host: str, timeout: float = 3.0) -> bool:
    import socket

    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def _load_weights(model: torch.nn.Module, path: Path, name: str) -> None:
    """Weights from a file: safetensors, or a torch file read with weights_only (never unpickled), by the
    same reader as the backbones' weights; then they must fit the model exactly."""
    from brushwork.backbones.weights import load_state_dict_file

    state = load_state_dict_file(path)
    if next(iter(state), "").startswith("module."):  # saved from a DataParallel/DDP wrapper, as open_clip allows
        state = {key.removeprefix("module."): value for key, value in state.items()}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[-1].strip()
        raise BrushworkError(f"{path}: weights do not fit CLIP {name} ({first[:200]})") from exc


def build_clip(config: dict, tokenizer_name: str = DEFAULT_MODEL, seed: int = 0) -> Clip:
    """A randomly initialised CLIP from an open_clip model config dict (``embed_dim``, ``vision_cfg``,
    ``text_cfg``), with the tokenizer shipped for ``tokenizer_name``: for tests and speed figures."""
    open_clip = _open_clip()
    torch.manual_seed(seed)
    model = open_clip.CLIP(**config)
    return Clip.wrap(model, open_clip.get_tokenizer(tokenizer_name), "custom", "random")


@dataclass
class ClipSettings:
    text: str
    weight: float = 5.0  # directional term, whole image
    patch_weight: float = 20.0  # patch-wise term
    crops: int = 8
    crop_fraction: float = 0.4  # crop side as a share of the image's short side
    threshold: float = 0.7  # patch losses below this are already close enough
    source_text: str = SOURCE_TEXT


class ClipObjective:
    """The CLIP terms at one scale; ``__call__(image)`` returns (loss, parts) and leaves the gradient in
    ``image.grad`` (added to what is there). With ``fresh_crops`` the crops change at every call (for Adam);
    otherwise they are drawn once, so the objective is deterministic, as L-BFGS needs."""

    def __init__(self, clip: Clip, settings: ClipSettings, content: torch.Tensor, seed: int, fresh_crops: bool):
        self.clip, self.s, self.fresh = clip, settings, fresh_crops
        direction = clip.encode_text(settings.text) - clip.encode_text(settings.source_text)
        self.text_direction = F.normalize(direction, dim=-1)
        with torch.no_grad():
            self.content_embedding = clip.encode_images(content)
        self.generator = torch.Generator().manual_seed(seed)
        self.fixed = None if fresh_crops else self._draw(content.shape[-2:])

    def _draw(self, hw) -> tuple[list[tuple[int, int, int]], torch.Tensor]:
        """Crop boxes (y, x, side) and their random affine warps."""
        short = min(hw)
        side = max(8, min(short, round(short * self.s.crop_fraction)))
        g = self.generator
        ys = torch.randint(0, hw[0] - side + 1, (self.s.crops,), generator=g).tolist()
        xs = torch.randint(0, hw[1] - side + 1, (self.s.crops,), generator=g).tolist()
        boxes = [(y, x, side) for y, x in zip(ys, xs, strict=True)]
        return boxes, _random_affines(self.s.crops, g)

    def _direction_loss(self, embeddings: torch.Tensor) -> torch.Tensor:
        delta = F.normalize(embeddings - self.content_embedding, dim=-1)
        return 1 - (delta * self.text_direction).sum(-1)

    def __call__(self, image: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        boxes, affines = self.fixed or self._draw(image.shape[-2:])
        with torch.enable_grad():
            pixels = image.detach().requires_grad_(True)
            whole = self.s.weight * self._direction_loss(self.clip.encode_images(pixels)).mean()
            loss, parts = whole, {"clip": whole}
            if self.s.crops and self.s.patch_weight:
                size = self.clip.image_size
                crops = torch.cat([
                    F.interpolate(pixels[..., y : y + side, x : x + side], size=(size, size), mode="bilinear",
                                  align_corners=False, antialias=True)
                    for y, x, side in boxes
                ])  # fmt: skip
                grid = F.affine_grid(affines.to(crops), list(crops.shape), align_corners=False)
                crops = F.grid_sample(crops, grid, padding_mode="reflection", align_corners=False)
                per_crop = self._direction_loss(self.clip.encode_images(crops))
                patch = self.s.patch_weight * torch.where(per_crop < self.s.threshold, 0, per_crop).mean()
                loss, parts = loss + patch, {"clip": whole, "clip_patch": patch}
            (grad,) = torch.autograd.grad(loss, pixels)
        image.grad = grad if image.grad is None else image.grad + grad
        return loss.detach(), {k: v.detach() for k, v in parts.items()}


def _random_affines(n: int, generator: torch.Generator) -> torch.Tensor:
    """(n, 2, 3) affine matrices: a flip half the time, up to 15 degrees of rotation, some shear and zoom.
    Written here (a few lines of trigonometry) because torchvision's transforms are not a dependency."""
    u = torch.rand(n, 4, generator=generator)
    angle = (u[:, 0] - 0.5) * math.radians(30)
    shear = (u[:, 1] - 0.5) * 0.3
    zoom = 0.85 + 0.3 * u[:, 2]
    flip = torch.where(u[:, 3] < 0.5, -1.0, 1.0)
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 1] = cos * flip, -sin + shear
    theta[:, 1, 0], theta[:, 1, 1] = sin * flip, cos
    return theta
