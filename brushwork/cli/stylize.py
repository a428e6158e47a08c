"""brushwork stylize | demo | info: the optimisation engine, the first run, and any output's record."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from brushwork import api
from brushwork.cli.common import (
    Replay,
    add_backbone_options,
    add_bit_depth,
    add_config_options,
    add_output_options,
    add_params_from,
    add_parser,
    add_protection_options,
    add_run_options,
    add_style_blend_weights,
    add_taste_options,
    apply_taste,
    note_taste,
    output_suffix,
    outputs_for,
    precision,
    progress_bar,
    protection_from_args,
)
from brushwork.errors import BrushworkError

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"

GUIDED = ("style_mask_feather", "style_text", "clip_model", "clip_pretrained", "clip_weight", "clip_patch_weight",
          "clip_crops", "clip_crop_fraction", "clip_threshold")  # fmt: skip
LOOK = ("image_size", "iterations", "content_weight", "style_weight", "tv_weight", "style_scale", "preserve_colors",
        "init", "seed")  # fmt: skip


def _add_stylize_options(p: argparse.ArgumentParser) -> None:
    add_output_options(p, "output image (.png, .jpg, .webp or .tif; one photo only)", "PHOTO-STYLE.png here")
    p.add_argument("--out-dir", help="folder for the outputs of several photos (default: here)")
    add_bit_depth(p)
    g = p.add_argument_group("look")
    add_config_options(g, api.StyleConfig, only=LOOK, keep_defaults=True)
    add_style_blend_weights(g)
    g.add_argument("--original-colors", action="store_true", help="same as --preserve-colors luminance")
    g.add_argument("--init-image", help="start from this image instead")
    g = p.add_argument_group("guided style: regions, sound, words")
    g.add_argument("--style-mask", nargs="+", help="greyscale mask(s) sending each style to its region: one per "
                   "style, or one for two styles (white = first, black = second); grey = soft edge")  # fmt: skip
    g.add_argument("--audio", help="a sound file whose mood sets the style weight and scale (and the mix of two "
                   "styles): a creative mapping, kept in the record")  # fmt: skip
    g.add_argument("--clip-weights", help="a CLIP weights file (.safetensors or state dict) instead of the cache")
    add_config_options(g, api.StyleConfig, only=GUIDED, keep_defaults=True)
    g = p.add_argument_group("engine")
    add_config_options(g, api.StyleConfig, skip=(*LOOK, *GUIDED, "style_blend", "tile"), keep_defaults=True)
    g.add_argument("--tile", type=_tile_option, default=None,
                   help="tile side in px for scales too big for memory: auto (default), off, or a size; exact, "
                   "no seams")  # fmt: skip
    add_backbone_options(g)
    g = p.add_argument_group("run")
    g.add_argument("--save-every", type=int, default=0, help="write an intermediate image every N iterations")
    g.add_argument("--resume", action="store_true", help="continue from the latest intermediate of this output")
    add_run_options(g, device=False)
    add_taste_options(p)
    add_protection_options(p)


def _tile_option(text: str) -> int | None:
    if text == "auto":
        return None
    if text == "off":
        return 0
    try:
        return int(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected auto, off or a size in px, got {text!r}") from exc


def register(sub) -> dict:
    """Add this capability's verbs to ``sub``; return {verb: handler}."""
    p = add_parser(sub, "stylize", "paint photos in the style of one or more paintings (Gatys et al.)")
    p.add_argument("content", nargs="+", help="the photo(s), or a folder of them")
    p.add_argument("--style", nargs="+", default=[], help="one or more style images (or --style-text)")
    _add_stylize_options(p)
    add_params_from(p, Replay(p, "gatys", lambda a: {"content": a.content[0] if len(a.content) == 1 else None,
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

    p = add_parser(sub, "info", "print the record of any brushwork output (image, GIF or MP4)")
    p.add_argument("image", help="a file brushwork wrote")
    return {"stylize": _run_stylize, "demo": _run_demo, "info": _run_info}


def _options(args: argparse.Namespace) -> dict:
    """The run's StyleConfig settings, as the API takes them."""
    names = [f for f in api.StyleConfig.__dataclass_fields__ if f != "style_blend" and hasattr(args, f)]
    options = {name: getattr(args, name) for name in names}
    options["style_blend"] = args.style_blend_weights
    if args.original_colors:
        options["preserve_colors"] = "luminance"
    return options


def _run_stylize(args: argparse.Namespace) -> int:
    contents = api.image_files(args.content)
    if (args.resume or args.init_image) and len(contents) > 1:
        raise BrushworkError("--resume and --init-image are for one photo at a time")
    if not args.style and not args.style_text:
        raise BrushworkError("give --style images, a --style-text, or both")
    if args.save_every < 0:  # a CLI-only option: checked here
        raise BrushworkError(f"save every must be 0 (never) or a number of iterations, not {args.save_every}")
    outputs = outputs_for(
        contents, args.style[0] if args.style else "text", args.output, args.out_dir, output_suffix(args)
    )
    for output in outputs:
        api.check_output_path(output, args.force, tuple(api.IMAGE_SUFFIXES))
    taste = apply_taste(args, "stylize", contents[0], args.style, **_backbone_choice(args), max_pixels=args.max_pixels,
                        style_blend=args.style_blend_weights, seed=args.seed)  # fmt: skip
    protection = protection_from_args(args)
    for content, output in zip(contents, outputs, strict=True):
        code = _stylize_one(args, content, output, taste, protection)
        if code:
            return code
    return 0


def _backbone_choice(args: argparse.Namespace) -> dict:
    return {"backbone": args.backbone, "weights": args.weights, "weights_layout": args.weights_layout,
            "pooling": args.pooling}  # fmt: skip


def _stylize_one(args: argparse.Namespace, content: Path, output: Path, taste: dict | None = None,
                 protection=None) -> int:  # fmt: skip
    options = _options(args)

    def snapshot(step, path: Path, **extra) -> None:
        """An intermediate or interrupted image, carrying the run's full settings and its step."""
        parameters = {**options, "backbone": args.backbone, "weights": args.weights,
                      "weights_layout": args.weights_layout, "pooling": args.pooling}  # fmt: skip
        record = api.stylize_record(content, args.style, step, extra=extra, **parameters)
        # Working files, written often: recorded, not watermarked or registered (the final image is).
        api.save(api.step_image(step), path, record, force=True, protection=None)

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
        start_step, init_image = _latest_intermediate(existing, content.name, options)
    try:
        with precision(args):
            result = api.stylize(content, args.style, backbone=args.backbone, weights=args.weights,
                                 weights_layout=args.weights_layout, pooling=args.pooling, device=args.device,
                                 init_image=init_image, start_step=start_step, max_pixels=args.max_pixels,
                                 on_step=on_step, style_masks=args.style_mask, audio=args.audio,
                                 clip_weights=args.clip_weights, **options)  # fmt: skip
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


def _latest_intermediate(existing: list[Path], content: str, options: dict) -> tuple[int, str]:
    """The step and path of the newest intermediate, if it was made by this same run."""
    if not existing:
        raise BrushworkError("--resume: no intermediates of this output found (they come from --save-every)")
    latest = existing[-1]
    record = api.info(latest)
    # JSON turns tuples into lists; compare like with like. Tiling changes memory, not the image.
    stored = {k: record.parameters.get(k) for k in options if k != "tile"}
    if (
        stored != json.loads(json.dumps({k: v for k, v in options.items() if k != "tile"}))
        or (record.inputs.get("content") or {}).get("name") != content
        or not isinstance(record.extra.get("step"), int)
    ):
        raise BrushworkError(f"--resume: {latest} was made with other inputs or options; rerun with --force")
    return record.extra["step"], str(latest)


def _run_demo(args: argparse.Namespace) -> int:
    """The optimisation engine on the bundled photo, then the bundled feed-forward and AdaIN models, timed."""
    import time

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
    # Any style at run time: the bundled AdaIN decoder with a painting it has never been given as a model.
    start = time.perf_counter()
    result = api.adain_apply(EXAMPLES / "adain-lite0.safetensors", photo, EXAMPLES / "shipwreck.jpg", image_size=512)
    print(api.save(result, adain_out, force=args.force, protection=protection))
    print(f"(AdaIN, any style: {time.perf_counter() - start:.2f} s for a 512 px image, loading included)")
    return 0


def _run_info(args: argparse.Namespace) -> int:
    print(json.dumps(api.info(args.image).to_dict(), indent=2, sort_keys=True))
    return 0
