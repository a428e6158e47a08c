"""brushwork stylize | demo: the optimisation engine and the first run."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from brushwork import api
from brushwork.cli.common import (
    EXAMPLES,
    Replay,
    add_backbone_options,
    add_bit_depth,
    add_output_options,
    add_params_from,
    add_parser,
    add_protection_options,
    add_run_options,
    add_settings,
    add_taste_options,
    apply_taste,
    note_taste,
    output_suffix,
    outputs_for,
    precision,
    progress_bar,
    protection_from_args,
    settings_from,
)
from brushwork.errors import BrushworkError

GUIDED = ("style_mask_feather", "style_text", "clip_model", "clip_pretrained", "clip_weight", "clip_patch_weight",
          "clip_crops", "clip_crop_fraction", "clip_threshold")  # fmt: skip
LOOK = ("image_size", "iterations", "content_weight", "style_weight", "tv_weight", "style_scale", "preserve_colors",
        "init", "seed", "style_blend_weights")  # fmt: skip
BACKBONE = ("backbone", "pooling")
SETTINGS = api.SETTINGS["stylize"]


def _add_stylize_options(p: argparse.ArgumentParser) -> None:
    add_output_options(p, "output image (.png, .jpg, .webp or .tif; one photo only)", "PHOTO-STYLE.png here")
    p.add_argument("--out-dir", help="folder for the outputs of several photos (default: here)")
    add_bit_depth(p)
    g = p.add_argument_group("look")
    add_settings(g, SETTINGS, only=LOOK)
    g.add_argument("--original-colors", action="store_true", help="same as --preserve-colors luminance")
    g.add_argument("--init-image", help="start from this image instead")
    g = p.add_argument_group("guided style: regions, sound, words")
    g.add_argument("--style-mask", nargs="+", help="greyscale mask(s) sending each style to its region: one per "
                   "style, or one for two styles (white = first, black = second); grey = soft edge")  # fmt: skip
    g.add_argument("--audio", help="a sound file whose mood sets the style weight and scale (and the mix of two "
                   "styles): a creative mapping, kept in the record")  # fmt: skip
    g.add_argument("--clip-weights", help="a CLIP weights file (.safetensors or state dict) instead of the cache")
    add_settings(g, SETTINGS, only=GUIDED)
    g = p.add_argument_group("engine")
    add_settings(g, SETTINGS, skip=(*LOOK, *GUIDED))
    add_backbone_options(g, backbone=False, pooling=False)
    g = p.add_argument_group("run")
    g.add_argument("--save-every", type=int, default=0, help="write an intermediate image every N iterations")
    g.add_argument("--resume", action="store_true", help="continue from the latest intermediate of this output")
    add_run_options(g, device=False)
    add_taste_options(p)
    add_protection_options(p)


def register(sub) -> dict:
    """Add this capability's verbs to ``sub``; return {verb: handler}."""
    p = add_parser(sub, "stylize", "paint photos in the style of one or more paintings (Gatys et al.)")
    p.add_argument("content", nargs="+", help="the photo(s), or a folder of them")
    p.add_argument("--style", nargs="+", default=[], help="one or more style images (or --style-text)")
    _add_stylize_options(p)
    add_params_from(p, Replay(p, "stylize", lambda a: {"content": a.content[0] if len(a.content) == 1 else None,
                                                    "styles": a.style, "style_masks": a.style_mask,
                                                    "audio": a.audio, "init_image": a.init_image}))  # fmt: skip

    p = add_parser(sub, "demo", "stylise the bundled example photo offline (a quick first run)")
    add_output_options(p, "output image", "brushwork-demo.png")
    p.add_argument("--image-size", type=int, default=256, help="long side of the output in px")
    # 60 L-BFGS steps of VGG-19 at 256 px paint the demo fully (docs/benchmarks.md): ~35 s on 2 CPU cores.
    p.add_argument("--iterations", type=int, default=60, help="iterations of the optimisation engine")
    p.add_argument("--backbone", choices=api.BACKBONES, default="auto",
                   help="auto: VGG-19, the seed's network (offline); lite0: a faster preview")  # fmt: skip
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    add_protection_options(p)
    return {"stylize": _run_stylize, "demo": _run_demo}


def _settings(args: argparse.Namespace, n_styles: int | None = None):
    """The run's settings, as the studio's form would give them; ``--original-colors`` is a shorthand."""
    if args.original_colors:
        args.preserve_colors = "luminance"
    return settings_from(SETTINGS, args, n_styles)


def _run_stylize(args: argparse.Namespace) -> int:
    _settings(args, len(args.style))  # checked before anything loads
    contents = api.image_files(args.content)
    if (args.resume or args.init_image) and len(contents) > 1:
        raise BrushworkError("--resume and --init-image are for one photo at a time")
    if not args.style and not args.style_text:
        raise BrushworkError("give --style images, a --style-text, or both")
    if args.save_every < 0:  # a CLI-only option: checked here
        raise BrushworkError(f"save every must be 0 (never) or a number of iterations, not {args.save_every}")
    outputs = outputs_for(
        contents, args.style[0] if args.style else "text", args.output, args.out_dir, output_suffix(args), "stylize"
    )
    for output in outputs:
        api.check_output_path(output, args.force, tuple(api.IMAGE_SUFFIXES))
    taste = apply_taste(args, "stylize", contents[0], args.style, **_backbone_choice(args), max_pixels=args.max_pixels,
                        style_blend=args.style_blend_weights, seed=args.seed)  # fmt: skip
    settings = _settings(args, len(args.style))  # with the taste's choice
    protection = protection_from_args(args)
    for content, output in zip(contents, outputs, strict=True):
        code = _stylize_one(args, settings, content, output, taste, protection)
        if code:
            return code
    return 0


def _backbone_choice(args: argparse.Namespace) -> dict:
    return {"backbone": args.backbone, "weights": args.weights, "weights_layout": args.weights_layout,
            "pooling": args.pooling}  # fmt: skip


def _stylize_one(args: argparse.Namespace, settings, content: Path, output: Path, taste: dict | None = None,
                 protection=None) -> int:  # fmt: skip
    def snapshot(step, path: Path, **extra) -> None:
        """An intermediate or interrupted image, carrying the run's full settings and its step."""
        api.keep_intermediate(path, content, args.style, step, settings, weights=args.weights,
                              weights_layout=args.weights_layout, **extra)  # fmt: skip

    existing = sorted(output.parent.glob(output.stem + ".step-*.png"))
    if existing and args.save_every and not (args.force or args.resume):
        raise BrushworkError(f"{existing[0]}: intermediates of an earlier run exist; use --resume or --force")
    bar = None
    latest: dict = {}

    def on_step(step) -> None:
        nonlocal bar
        latest["step"] = step
        if not args.quiet:
            if bar is None:
                bar = progress_bar(step.total)
            bar.update(1)
            if step.step % 10 == 0 or step.step == step.total:
                bar.set_postfix({k: f"{v.item():.3g}" for k, v in step.losses.items()}, refresh=False)
        if args.save_every and step.step % args.save_every == 0:
            snapshot(step, output.with_name(f"{output.stem}.{api.step_name(step.step)}.png"))

    start_step, init_image = 0, args.init_image
    if args.resume:
        if not existing:
            raise BrushworkError("--resume: no intermediates of this output found (they come from --save-every)")
        start_step, init_image = api.resume_point(existing, content, settings)
        if init_image is None:
            raise BrushworkError(f"--resume: {existing[-1]} was made with other inputs or options; rerun with --force")
    try:
        with precision(args):
            result = api.stylize(content, args.style, weights=args.weights, weights_layout=args.weights_layout,
                                 device=args.device, init_image=init_image, start_step=start_step,
                                 max_pixels=args.max_pixels, on_step=on_step, style_masks=args.style_mask,
                                 audio=args.audio, clip_weights=args.clip_weights, **settings.values())  # fmt: skip
    except KeyboardInterrupt:
        if bar is not None:
            bar.close()
        step = latest.get("step")
        if step is None:
            print("brushwork: interrupted before the first iteration; nothing written", file=sys.stderr)
            return 130
        partial = output.with_name(output.stem + ".interrupted.png")
        snapshot(step, partial, interrupted=True)
        print(f"brushwork: interrupted; the image so far is in {partial} (continue with --init-image)", file=sys.stderr)
        return 130
    if bar is not None:
        bar.close()
    api.save(note_taste(result, taste), output, force=args.force, bit_depth=args.bit_depth, protection=protection)
    for note in api.record_of(result).extra.get("notes", []):
        print(f"brushwork: note: {note}", file=sys.stderr)
    print(output)
    return 0


def _run_demo(args: argparse.Namespace) -> int:
    """The optimisation engine on the bundled photo, then the bundled feed-forward and AdaIN models, timed."""
    photo = EXAMPLES / "tubingen.jpg"
    output = Path(args.output or "brushwork-demo.png")
    fast_out = output.with_name(output.stem + "-fast.png")
    adain_out = output.with_name(output.stem + "-adain.png")
    for out in (output, fast_out, adain_out):
        api.check_output_path(out, args.force, tuple(api.IMAGE_SUFFIXES))
    bar = None

    def on_step(step) -> None:
        nonlocal bar
        if not args.quiet:
            bar = bar or progress_bar(step.total)
            bar.update(1)

    start = time.perf_counter()
    try:
        result = api.stylize(photo, EXAMPLES / "starry_night.jpg", image_size=args.image_size,
                             iterations=args.iterations, backbone=args.backbone, on_step=on_step)  # fmt: skip
    finally:
        if bar is not None:
            bar.close()
    protection = protection_from_args(args)
    print(api.save(result, output, force=args.force, protection=protection))
    backbone = api.record_of(result).parameters["backbone"]
    print(f"(optimisation on {backbone}: {time.perf_counter() - start:.1f} s for {args.iterations} iterations "
          f"at {args.image_size} px, loading included)")  # fmt: skip
    start = time.perf_counter()
    result = api.fast_apply(EXAMPLES / "starry_night-fast.safetensors", photo, image_size=512)
    print(api.save(result, fast_out, force=args.force, protection=protection))
    print(f"(feed-forward model: {time.perf_counter() - start:.2f} s for a 512 px image, loading included)")
    # Any style at run time: Magenta's arbitrary network, painting at the photo's own 512 px.
    start = time.perf_counter()
    result = api.adain_apply(api.MAGENTA_MODEL, photo, EXAMPLES / "shipwreck.jpg", image_size=512)
    print(api.save(result, adain_out, force=args.force, protection=protection))
    print(
        f"(Magenta's arbitrary network, any style: {time.perf_counter() - start:.2f} s for a 512 px image, "
        "loading included)"
    )
    return 0
