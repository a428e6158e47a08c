"""Neural style transfer by optimisation (Gatys, Ecker & Bethge 2016).

The pixels of the output are optimised (L-BFGS by default, or Adam) so that a frozen backbone sees
the content image's features at the content layers and the style images' Gram matrices at the
style layers. Large outputs are reached coarse-to-fine: each scale starts from the one before,
upsampled, so most iterations run at the cheap sizes. Scales too big for memory run in exact tiles
(``tiling.py``), and the L-BFGS history shrinks to fit beside them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

import torch
import torch.nn.functional as F
from PIL import Image

from brushwork import threads
from brushwork.backbones.base import FeatureExtractor
from brushwork.errors import BrushworkError, finite_weights, non_negative, require, seed_check
from brushwork.media import image_to_tensor, resize_long_side, tensor_to_image
from brushwork.settings import setting
from brushwork.style import color, masks
from brushwork.style.clip_guidance import Clip, ClipObjective, ClipSettings
from brushwork.style.lbfgs import DeviceLBFGS
from brushwork.style.losses import (
    GuidedTargets,
    RelativeErrors,
    WeightedParts,
    blended_grams,
    gram_matrix,
    guided_style_loss,
    tv_errors,
    tv_loss,
)
from brushwork.style.tiling import (
    TiledFeatures,
    TiledObjective,
    available_memory,
    choose_tile,
    probe_memory,
)

OPTIMIZERS = ("lbfgs", "adam")
INITS = ("content", "noise")
LBFGS_HISTORY = 100  # stored pairs, as neural-style's default
MIN_LBFGS_HISTORY = 5
#: Shares of the free memory that the L-BFGS history, then the network's activations, may take.
HISTORY_MEMORY_SHARE = 0.4
ACTIVATION_MEMORY_SHARE = 0.6
MIN_SIZE = 16
MAX_SIZE = 16384


def parse_tile(text: str) -> int | None:
    """``--tile``'s text: ``auto`` (by the free memory), ``off`` (never) or a side in px."""
    if text == "auto":
        return None
    if text == "off":
        return 0
    try:
        return int(text)
    except ValueError:
        raise BrushworkError(f"tile: expected auto, off or a size in px, got {text[:60]!r}") from None


@dataclass
class StyleConfig:
    """Every knob of a run; written into the output so the run can be repeated."""

    image_size: int = setting(512, help="long side of the output in px", basic=True)
    iterations: int = setting(300, help="iterations at the first scale", basic=True)
    content_weight: float = setting(1.0, help="how much of the photo's content to keep", basic=True)
    style_weight: float = setting(20.0, help="how strongly to paint in the style", basic=True)
    tv_weight: float = setting(1.0, help="smoothness (total variation)")
    style_scale: float = setting(
        1.0, help="style image size relative to the output: smaller gives finer strokes", basic=True
    )
    #: Given as ``style_blend_weights`` (the keyword and flag of every engine); recorded as ``style_blend``.
    style_blend: list[float] | None = setting(
        None,
        help="how much of each style, e.g. 3,7 for two styles (normalised)",
        name="style_blend_weights",
        aliases=("--style-weights",),
        basic=True,
    )
    optimizer: str = setting("lbfgs", help="lbfgs converges in fewer steps; adam uses less memory", choices=OPTIMIZERS)
    learning_rate: float = setting(0.02, help="adam only")
    init: str = setting("content", help="where the optimisation starts", choices=INITS)
    seed: int = setting(0, help="same seed, same inputs, same machine: the same image", basic=True)
    preserve_colors: str = setting(
        "none",
        help="keep the photo's colours: luminance transfer, or the style recoloured first",
        choices=color.MODES,
        basic=True,
    )
    content_layers: list[str] | None = setting(None, help="e.g. relu4_2")
    style_layers: list[str] | None = setting(None, help="e.g. relu1_1,relu2_1,relu3_1")
    scales: list[int] | None = setting(
        None, help="coarse-to-fine sizes, e.g. 512,1024,2048 (default: halve down to 512-1023 px)"
    )
    fine_iterations: int | None = setting(None, help="iterations at each finer scale (default: half of --iterations)")
    #: Tile side in px for scales that do not fit in memory whole: None picks by the free memory,
    #: 0 never tiles. Tiles are exact (the whole image's loss and gradient), so this trades speed for memory.
    tile: int | None = setting(
        None,
        help="tile side in px for scales too big for memory: auto (default), off, or a size; exact, no seams",
        parse=lambda text: parse_tile(text),
    )
    #: L-BFGS pairs kept (neural-style's -lbfgs_num_correction); fewer are kept if memory is short.
    lbfgs_history: int = setting(LBFGS_HISTORY, help="L-BFGS pairs kept (fewer if short of memory)")
    style_mask_feather: float = setting(0.0, help="blur the --style-mask edges by N px")
    style_text: str | None = setting(
        None, help='the style in words, e.g. "a watercolour with warm, loose strokes" (CLIP), alone or with --style'
    )
    clip_model: str = setting("ViT-B-32", help="an open_clip model name")
    clip_pretrained: str = setting("openai", help="its weights' tag in the Hugging Face cache")
    clip_weight: float = setting(5.0, help="directional CLIP loss on the whole image")
    clip_patch_weight: float = setting(20.0, help="the same on random augmented crops")
    clip_crops: int = setting(8, help="random crops per step")
    clip_crop_fraction: float = setting(0.4, help="crop side / the image's short side")
    clip_threshold: float = setting(0.7, help="crops whose CLIP loss is below this are left alone")

    def validate(self, n_styles: int) -> None:
        if not MIN_SIZE <= self.image_size <= MAX_SIZE:
            raise BrushworkError(f"image size must be between {MIN_SIZE} and {MAX_SIZE} pixels, not {self.image_size}")
        style_px = self.image_size * self.style_scale
        if not (self.style_scale > 0 and MIN_SIZE <= style_px <= MAX_SIZE):
            raise BrushworkError(
                f"style scale {self.style_scale} makes the style image {style_px:.0f} px; "
                f"it must come out between {MIN_SIZE} and {MAX_SIZE}"
            )
        if self.iterations < 1 or (self.fine_iterations is not None and self.fine_iterations < 1):
            raise BrushworkError("iterations (and fine iterations) must be at least 1")
        require([seed_check(self.seed)])
        if self.optimizer not in OPTIMIZERS:
            raise BrushworkError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, not {self.optimizer!r}")
        if self.preserve_colors not in color.MODES:
            raise BrushworkError(f"colour preservation must be one of {', '.join(color.MODES)}")
        require(
            non_negative(self, ("content_weight", "style_weight", "tv_weight", "learning_rate", "style_mask_feather",
                                "clip_weight", "clip_patch_weight", "clip_threshold"))
        )  # fmt: skip
        if self.style_text is not None:
            if not self.style_text.strip():
                raise BrushworkError("the style text is empty")
            if len(self.style_text) > 1000:
                raise BrushworkError(
                    f"the style text is {len(self.style_text)} characters; CLIP reads a sentence or two"
                )
            if not 0 <= self.clip_crops <= 256:
                raise BrushworkError("clip crops must be between 0 and 256")
            if not 0 < self.clip_crop_fraction <= 1:
                raise BrushworkError("clip crop fraction must be in (0, 1]")
        if self.tile is not None and self.tile != 0 and self.tile < MIN_SIZE:
            raise BrushworkError(f"tile must be 0 (off) or at least {MIN_SIZE} px, not {self.tile}")
        if self.lbfgs_history < 1:
            raise BrushworkError("lbfgs history must be at least 1")
        if self.style_blend is not None:
            if len(self.style_blend) != n_styles:
                raise BrushworkError(f"{n_styles} style images but {len(self.style_blend)} blend weights")
            finite_weights(self.style_blend, "style blend weights")
        for size in self.scales or []:
            if not MIN_SIZE <= size <= MAX_SIZE:
                raise BrushworkError(f"scale {size} is outside {MIN_SIZE}..{MAX_SIZE} pixels")

    def blend(self, n_styles: int) -> list[float]:
        weights = self.style_blend or [1.0] * n_styles
        return [w / sum(weights) for w in weights]

    def plan_scales(self) -> list[int]:
        """Halve from image_size down to 512..1023 px: 2048 -> [512, 1024, 2048], 800 -> [800]."""
        if self.scales:
            return sorted({s for s in self.scales if s < self.image_size} | {self.image_size})
        sizes = [self.image_size]
        while sizes[0] // 2 >= 512:
            sizes.insert(0, sizes[0] // 2)
        return sizes

    def iterations_at(self, scale_index: int) -> int:
        if scale_index == 0:
            return self.iterations
        return self.fine_iterations if self.fine_iterations is not None else max(1, self.iterations // 2)


@dataclass
class Step:
    """What a progress callback sees after each loss evaluation."""

    step: int
    total: int
    scale: int
    losses: dict[str, torch.Tensor]
    image: torch.Tensor


class GatysEngine:
    """Optimise an image's pixels against a frozen backbone. Usable from Python without the CLI."""

    def __init__(self, backbone: FeatureExtractor, device: torch.device | str = "cpu"):
        self.device = torch.device(device)
        self.backbone = backbone.to(self.device)
        #: What the last run chose per scale: {"size", "tile" (0: whole), "lbfgs_history"}.
        self.plans: list[dict[str, int]] = []
        #: What the last run adjusted in its inputs, one line each (e.g. a mask resized to the output).
        self.notes: list[str] = []
        #: L-BFGS kept on the device (``lbfgs.DeviceLBFGS``): None is on CUDA only (benchmarks set it).
        self.device_lbfgs: bool | None = None
        if self.device.type == "cuda":
            # NHWC lets cuDNN pick its fastest convolution kernels on tensor-core GPUs.
            self.backbone = self.backbone.to(memory_format=torch.channels_last)

    def _tensor(self, img: Image.Image) -> torch.Tensor:
        t = image_to_tensor(img).to(self.device)
        return t.contiguous(memory_format=torch.channels_last) if self.device.type == "cuda" else t

    def run(
        self,
        content: Image.Image,
        styles: Sequence[Image.Image],
        config: StyleConfig | None = None,
        init_image: Image.Image | None = None,
        on_step: Callable[[Step], None] | None = None,
        start_step: int = 0,
        style_masks: Sequence[Image.Image] | None = None,
        clip: Clip | None = None,
    ) -> Image.Image:
        """Stylise ``content``. With ``start_step`` > 0, ``init_image`` is a saved intermediate and the
        run continues from that step of the schedule (the optimiser's history starts afresh).

        ``style_masks`` send each style to its region (``masks.region_masks``: one mask per style, or one
        for two styles); what was adjusted on the way (a mask resized) is in ``self.notes``. With
        ``cfg.style_text``, ``clip`` (``clip_guidance.load_clip``) adds the CLIP objective; ``styles`` may
        then be empty."""
        cfg = config or StyleConfig()
        if not styles and not cfg.style_text:
            raise BrushworkError("at least one style image (or a style text) is needed")
        if cfg.style_text and clip is None:
            raise BrushworkError("a style text needs a CLIP model (clip_guidance.load_clip)")
        if style_masks and not styles:
            raise BrushworkError("style masks need style images")
        cfg.validate(len(styles))
        content_layers = list(cfg.content_layers or self.backbone.content_layers)
        style_layers = list(cfg.style_layers or self.backbone.style_layers)
        self.backbone.check_layers(content_layers + style_layers)
        if (start_step > 0 or cfg.init not in INITS) and init_image is None:
            raise BrushworkError("continuing a run, or init 'image', needs an init image")
        self.notes = []
        regions = None
        if style_masks:
            out_size = resize_long_side(content, cfg.image_size).size
            regions, self.notes = masks.region_masks(style_masks, len(styles), out_size, cfg.style_mask_feather)
        generator = torch.Generator().manual_seed(cfg.seed)
        torch.manual_seed(cfg.seed)

        schedule = [(size, cfg.iterations_at(i)) for i, size in enumerate(cfg.plan_scales())]
        total = sum(iters for _, iters in schedule)
        if not 0 <= start_step < total:
            raise BrushworkError(f"cannot continue from step {start_step}: the run has {total} steps")
        done = 0
        image: torch.Tensor | None = None
        self.plans = []
        for size, iterations in schedule:
            if done + iterations <= start_step:
                done += iterations  # this scale was finished before the restart
                continue
            already = max(0, start_step - done)
            done += already
            content_img = resize_long_side(content, size)
            tile, history = self._plan_memory(content_img.size[::-1], cfg, content_layers + style_layers, iterations)
            self.plans.append({"size": size, "tile": tile, "lbfgs_history": history})
            multiple = self.backbone.tile_geometry(content_layers + style_layers).size_multiple if tile else 1
            content_t = self._tensor(_round_sides(content_img, multiple))
            style_targets = self._style_targets(content_t, styles, size, cfg, style_layers, tile, multiple)
            if regions is not None:
                scale_masks = masks.masks_for(regions, content_t.shape[-2:]).to(self.device)
                shares = masks.region_shares(scale_masks, cfg.blend(len(styles)))
                style_targets = GuidedTargets(style_targets, scale_masks, shares)
            else:
                style_targets = blended_grams(style_targets, cfg.blend(len(styles))) if styles else {}
            if image is None:
                image = self._initial_image(cfg, content_t, init_image, generator, resuming=start_step > 0)
            else:
                image = F.interpolate(image, size=content_t.shape[-2:], mode="bicubic", align_corners=False)
            fmt = torch.channels_last if self.device.type == "cuda" else torch.contiguous_format
            image = image.clamp(0, 1).detach().contiguous(memory_format=fmt).requires_grad_(True)
            if tile:
                weights = (cfg.content_weight, cfg.style_weight, cfg.tv_weight)
                tiled = TiledObjective(self.backbone, content_t, style_targets, content_layers, weights, tile)
                objective = partial(tiled, image)
            else:
                with torch.no_grad():
                    content_targets = self.backbone(content_t, content_layers)
                    content_losses = RelativeErrors(content_targets, scale=cfg.content_weight)
                    if not isinstance(style_targets, GuidedTargets) and style_targets:
                        style_targets = RelativeErrors(style_targets, scale=cfg.style_weight)
                parts_of = (
                    None
                    if isinstance(style_targets, GuidedTargets)
                    else self._parts_of(cfg, content_losses, style_targets)
                )
                objective = partial(self._objective, image, cfg, content_losses, style_targets, parts_of)
            if cfg.style_text:
                objective = self._with_clip(objective, image, clip, cfg, content_t, len(self.plans))
            done = self._optimise(image, objective, cfg, iterations - already, done, total, size, on_step, history)

        assert image is not None
        result = image.detach().clamp(0, 1)
        content_full = self._tensor(resize_long_side(content, cfg.image_size))
        if result.shape[-2:] != content_full.shape[-2:]:  # a tiled Lite0 scale rounded the sides
            result = F.interpolate(result, size=content_full.shape[-2:], mode="bicubic", antialias=True).clamp(0, 1)
        if cfg.preserve_colors == "luminance":
            result = color.luminance_transfer(result.float(), content_full.float())
        return tensor_to_image(result)

    def _plan_memory(
        self, image_hw: tuple[int, int], cfg: StyleConfig, layers: list[str], iterations: int
    ) -> tuple[int, int]:
        """(tile side or 0, L-BFGS pairs) for one scale: the history takes up to its share of the free
        memory, and the image is tiled if its activations do not fit in what is left."""
        history = min(cfg.lbfgs_history, max(1, iterations))
        if cfg.tile == 0:
            return 0, history
        if not self.backbone.tileable:
            if cfg.tile:
                raise BrushworkError(f"the {self.backbone.name} backbone cannot be tiled; drop --tile")
            return 0, history
        if cfg.tile is not None:
            return cfg.tile, history
        free = available_memory(self.device)
        vector = 4 * 3 * image_hw[0] * image_hw[1]
        if cfg.optimizer == "lbfgs":
            fits = int(HISTORY_MEMORY_SHARE * free / (2 * vector))
            history = min(history, max(MIN_LBFGS_HISTORY, fits))
        rest = free - (2 * history + 8) * vector  # the history, and the image, gradient and friends
        need = probe_memory(self.backbone, layers, self.device).step
        geometry = self.backbone.tile_geometry(layers)
        return choose_tile(image_hw, geometry, need, int(ACTIVATION_MEMORY_SHARE * max(rest, 0))), history

    @torch.no_grad()
    def _style_targets(
        self,
        content_t: torch.Tensor,
        styles: Sequence[Image.Image],
        size: int,
        cfg: StyleConfig,
        style_layers: list[str],
        tile: int,
        multiple: int,
    ) -> list[dict[str, torch.Tensor]]:
        """Each style's Gram matrices at one scale (read in tiles when the scale is tiled)."""
        per_style = []
        for style in styles:
            style_img = resize_long_side(style, max(MIN_SIZE, round(size * cfg.style_scale)))
            style_t = self._tensor(_round_sides(style_img, multiple))
            if cfg.preserve_colors == "histogram":
                style_t = color.match_color_statistics(style_t.cpu(), content_t.cpu()).to(style_t)
            if tile:
                per_style.append(
                    TiledFeatures(self.backbone, style_layers, style_t.shape[-2:], tile).grams(style_t, style_layers)
                )
            else:
                per_style.append({k: gram_matrix(v) for k, v in self.backbone(style_t, style_layers).items()})
        return per_style

    @staticmethod
    def _parts_of(
        cfg: StyleConfig, content_losses: RelativeErrors, style_targets: RelativeErrors | dict
    ) -> WeightedParts:
        """The weights that take a step's errors (content layers, style layers, the two TV terms) to its parts."""
        style = style_targets.coef if isinstance(style_targets, RelativeErrors) else content_losses.coef[:0]
        tv = torch.full((2,), cfg.tv_weight, device=content_losses.coef.device)
        return WeightedParts({"content": content_losses.coef, "style": style, "tv": tv})

    def _objective(
        self,
        image: torch.Tensor,
        cfg: StyleConfig,
        content_losses: RelativeErrors,
        style_targets: RelativeErrors | GuidedTargets | dict,
        parts_of: WeightedParts | None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Loss and its parts (detached) at ``image``; leaves the gradient in ``image.grad``. Without guided
        style, every error is weighted and summed in one product (``parts_of``): a step dispatches no more
        operators than it must (#21)."""
        guided = isinstance(style_targets, GuidedTargets)
        style_names = style_targets.layers if guided else list(getattr(style_targets, "targets", style_targets))
        feats = self.backbone(image, list(dict.fromkeys([*content_losses.targets, *style_names])))
        if parts_of is None:
            assert guided
            style = cfg.style_weight * guided_style_loss(feats, style_targets)
            parts = {"content": content_losses(feats), "style": style, "tv": cfg.tv_weight * tv_loss(image)}
            loss = parts["content"] + parts["style"] + parts["tv"]
            parts = {k: v.detach() for k, v in parts.items()}
        else:
            errors = content_losses.errors(feats)
            if style_targets:
                errors += style_targets.errors(style_targets.grams(feats))
            vector = parts_of([*errors, *tv_errors(image)])
            loss = vector.sum()
            parts = dict(zip(parts_of.names, vector.detach().unbind(), strict=True))
        loss.backward()
        return loss, parts

    @staticmethod
    def _with_clip(objective, image: torch.Tensor, clip: Clip, cfg: StyleConfig, content_t: torch.Tensor, scale: int):
        """``objective`` plus the CLIP terms (their gradient added to ``image.grad``)."""
        settings = ClipSettings(cfg.style_text, cfg.clip_weight, cfg.clip_patch_weight, cfg.clip_crops,
                                cfg.clip_crop_fraction, cfg.clip_threshold)  # fmt: skip
        clip_objective = ClipObjective(clip, settings, content_t, cfg.seed + scale, cfg.optimizer == "adam")

        def combined() -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
            loss, parts = objective()
            clip_loss, clip_parts = clip_objective(image)
            return loss + clip_loss, {**parts, **clip_parts}

        return combined

    def _initial_image(
        self,
        cfg: StyleConfig,
        content_t: torch.Tensor,
        init_image: Image.Image | None,
        generator: torch.Generator,
        resuming: bool,
    ) -> torch.Tensor:
        if cfg.init == "content" and not resuming:
            return content_t.clone()
        if cfg.init == "noise" and not resuming:
            return torch.rand(content_t.shape, generator=generator).to(self.device)
        assert init_image is not None
        resized = init_image.resize((content_t.shape[-1], content_t.shape[-2]), Image.Resampling.LANCZOS)
        return self._tensor(resized)

    def _optimise(
        self,
        image: torch.Tensor,
        objective: Callable[[], tuple[torch.Tensor, dict[str, torch.Tensor]]],
        cfg: StyleConfig,
        iterations: int,
        done: int,
        total: int,
        size: int,
        on_step: Callable[[Step], None] | None,
        history: int,
    ) -> int:
        counter = [done]

        def closure() -> torch.Tensor:
            image.grad = None
            if self.device.type == "cpu":
                threads.refit()  # a job started or ended beside this run: threads to the cores free now
            loss, parts = objective()  # leaves the gradient in image.grad
            counter[0] += 1
            if on_step is not None:
                parts = {k: v.detach() if v.requires_grad else v for k, v in parts.items()}
                parts["total"] = loss.detach()
                on_step(Step(counter[0], total, size, parts, image.detach()))
            return loss

        if cfg.optimizer == "lbfgs":
            # One evaluation per iteration, no tolerance stop: the same budget semantics as neural-style.
            if self.device.type == "cuda" if self.device_lbfgs is None else self.device_lbfgs:
                DeviceLBFGS(image, history=history).run(closure, iterations)
            else:
                # Host syncs and kernel launches cost nothing on a CPU, and there torch's two-loop recursion
                # reads the history in fewer passes than the compact form (benchmarks/lbfgs_overhead.py).
                # (MPS has no float64 for the compact form's small solves either.)
                optimizer = torch.optim.LBFGS([image], lr=1, max_iter=iterations, max_eval=iterations,
                                              tolerance_grad=-1, tolerance_change=-1, history_size=history)  # fmt: skip
                optimizer.step(closure)
        else:
            optimizer = torch.optim.Adam([image], lr=cfg.learning_rate)
            for _ in range(iterations):
                optimizer.step(closure)
                with torch.no_grad():
                    image.clamp_(0, 1)
        return counter[0]


def _round_sides(img: Image.Image, multiple: int) -> Image.Image:
    """``img`` resized to the nearest sides that are multiples of ``multiple`` (a backbone that tiles exactly
    only at such sides); unchanged when ``multiple`` is 1."""
    if multiple == 1:
        return img
    w, h = (max(multiple, round(v / multiple) * multiple) for v in img.size)
    return img if (w, h) == img.size else img.resize((w, h), Image.Resampling.LANCZOS)
