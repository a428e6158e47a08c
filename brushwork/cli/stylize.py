"""brushwork stylize | demo | info: the optimisation engine."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import fields
from pathlib import Path

from brushwork.cli.common import add_backbone_options, float_list, int_list, name_list, progress_bar
from brushwork.errors import BrushworkError

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _add_stylize_options(p: argparse.ArgumentParser) -> None:
    from brushwork.media import DEFAULT_MAX_PIXELS
    from brushwork.style.color import MODES
    from brushwork.style.gatys import OPTIMIZERS, StyleConfig

    d = StyleConfig()
    p.add_argument("-o", "--output", help="output .png (default: CONTENT-STYLE.png here)")
    p.add_argument("--force", action="store_true", help="overwrite an existing output")
    g = p.add_argument_group("look")
    g.add_argument("--image-size", type=int, default=d.image_size, help="long side of the output in px")
    g.add_argument("--iterations", type=int, default=d.iterations, help="iterations at the first scale")
    g.add_argument("--content-weight", type=float, default=d.content_weight)
    g.add_argument("--style-weight", type=float, default=d.style_weight)
    g.add_argument("--tv-weight", type=float, default=d.tv_weight, help="smoothness (total variation)")
    g.add_argument("--style-scale", type=float, default=d.style_scale, help="style image size relative to output")
    g.add_argument("--style-blend-weights", type=float_list, default=None, help="e.g. 3,7 for two styles")
    g.add_argument("--preserve-colors", choices=MODES, default=d.preserve_colors)
    g.add_argument("--original-colors", action="store_true", help="same as --preserve-colors luminance")
    g.add_argument("--init", choices=("content", "noise"), default=d.init)
    g.add_argument("--init-image", help="start from this image instead")
    g.add_argument("--seed", type=int, default=d.seed)
    g = p.add_argument_group("engine")
    g.add_argument("--optimizer", choices=OPTIMIZERS, default=d.optimizer)
    g.add_argument("--learning-rate", type=float, default=d.learning_rate, help="Adam only")
    g.add_argument("--scales", type=int_list, default=None, help="coarse-to-fine sizes, e.g. 512,1024,2048")
    g.add_argument("--fine-iterations", type=int, default=None, help="iterations at each finer scale")
    g.add_argument("--content-layers", type=name_list, default=None, help="e.g. relu4_2")
    g.add_argument("--style-layers", type=name_list, default=None, help="e.g. relu1_1,relu2_1,relu3_1")
    g.add_argument(
        "--tile",
        type=_tile_option,
        default=d.tile,
        help="tile side in px for scales too big for memory: auto (default), off, or a size; exact, no seams",
    )
    g.add_argument(
        "--lbfgs-history", type=int, default=d.lbfgs_history, help="L-BFGS pairs kept (fewer if short of memory)"
    )
    add_backbone_options(g)
    g = p.add_argument_group("run")
    g.add_argument("--save-every", type=int, default=0, help="write an intermediate image every N iterations")
    g.add_argument("--resume", action="store_true", help="continue from the latest intermediate of this output")
    g.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS, help="refuse larger input images")
    g.add_argument("--params-from", help="take the options stored in a brushwork PNG (flags given here win)")
    g.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


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
    p = sub.add_parser("stylize", help="paint a photo in the style of one or more paintings (Gatys et al.)")
    p.add_argument("content", help="the photo")
    p.add_argument("--style", nargs="+", required=True, help="one or more style images")
    _add_stylize_options(p)
    p.set_defaults(stylize_parser=p)  # for --params-from, which sets this sub-parser's defaults

    p = sub.add_parser("demo", help="stylise the bundled example photo offline (a quick first run)")
    p.add_argument("-o", "--output", default="brushwork-demo.png")
    p.add_argument("--force", action="store_true")
    p.add_argument("--image-size", type=int, default=256)
    p.add_argument("--iterations", type=int, default=150)

    p = sub.add_parser("info", help="print the parameters a brushwork image was made with")
    p.add_argument("image")
    return {"stylize": _run_stylize, "demo": _run_demo, "info": _run_info}


def parse_with_stored_params(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """Parse twice: options stored in --params-from become defaults, so flags on the line still win."""
    args = parser.parse_args(argv)
    if args.verb != "stylize" or not args.params_from:
        return args
    from brushwork.records import read_record
    from brushwork.style.gatys import StyleConfig

    stored = read_record(args.params_from).parameters
    keys = {f.name for f in fields(StyleConfig)} | {"weights_layout", "pooling"}
    defaults = {k: v for k, v in stored.items() if k in keys}
    if "style_blend" in defaults:
        defaults["style_blend_weights"] = defaults.pop("style_blend")
    if stored.get("backbone") in ("vgg16", "vgg19", "lite0"):
        defaults["backbone"] = stored["backbone"]
    if defaults.get("init") not in ("content", "noise"):
        defaults.pop("init", None)
    args.stylize_parser.set_defaults(**defaults)
    return parser.parse_args(argv)


def _run_stylize(args: argparse.Namespace) -> int:
    from brushwork.api import save, stylize
    from brushwork.files import check_output_path
    from brushwork.records import describe_input, new_record

    def snapshot(step, path: Path, **extra) -> None:
        """An intermediate or interrupted image, carrying the run's full settings and its step."""
        from brushwork.media import tensor_to_image

        inputs = {"content": describe_input(args.content), "styles": [describe_input(s) for s in args.style]}
        extra = {"step": step.step, "scale": step.scale, **extra}
        parameters = {**options, "backbone": args.backbone, "weights": args.weights}
        record = new_record("gatys", parameters, inputs=inputs, seed=args.seed, extra=extra)
        save(tensor_to_image(step.image), path, record, force=True)

    output = Path(args.output or f"{Path(args.content).stem}-{Path(args.style[0]).stem}.png")
    check_output_path(output, args.force)
    step_path = output.with_name(output.stem + ".step{:05d}.png")
    existing = sorted(output.parent.glob(output.stem + ".step*.png"))
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
            snapshot(step, Path(str(step_path).format(step.step)))

    options = dict(
        image_size=args.image_size,
        iterations=args.iterations,
        content_weight=args.content_weight,
        style_weight=args.style_weight,
        tv_weight=args.tv_weight,
        style_scale=args.style_scale,
        style_blend=args.style_blend_weights,
        optimizer=args.optimizer,
        learning_rate=args.learning_rate,
        init=args.init,
        seed=args.seed,
        preserve_colors="luminance" if args.original_colors else args.preserve_colors,
        content_layers=args.content_layers,
        style_layers=args.style_layers,
        scales=args.scales,
        fine_iterations=args.fine_iterations,
        tile=args.tile,
        lbfgs_history=args.lbfgs_history,
    )
    start_step, init_image = 0, args.init_image
    if args.resume:
        start_step, init_image = _latest_intermediate(existing, Path(args.content).name, options)
    try:
        result = stylize(
            args.content,
            args.style,
            backbone=args.backbone,
            weights=args.weights,
            weights_layout=args.weights_layout,
            pooling=args.pooling,
            device=args.device,
            init_image=init_image,
            start_step=start_step,
            max_pixels=args.max_pixels,
            on_step=on_step,
            **options,
        )
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
    save(result, output, force=args.force)
    print(output)
    return 0


def _latest_intermediate(existing: list[Path], content: str, options: dict) -> tuple[int, str]:
    """The step and path of the newest intermediate, if it was made by this same run."""
    from brushwork.records import read_record

    if not existing:
        raise BrushworkError("--resume: no intermediates of this output found (they come from --save-every)")
    latest = existing[-1]
    record = read_record(latest)
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
    """The optimisation engine on the bundled photo, then the bundled feed-forward model on it, timed."""
    from brushwork.cli import main

    fast_out = Path(args.output).with_name(Path(args.output).stem + "-fast.png")
    adain_out = Path(args.output).with_name(Path(args.output).stem + "-adain.png")
    from brushwork.files import check_output_path

    for out in (fast_out, adain_out):
        check_output_path(out, args.force)
    force = ["--force"] if args.force else []
    argv = ["stylize", str(EXAMPLES / "tubingen.jpg"), "--style", str(EXAMPLES / "starry_night.jpg"),
            "--image-size", str(args.image_size), "--iterations", str(args.iterations), "-o", args.output]  # fmt: skip
    code = main(argv + force)
    if code:
        return code
    import time

    start = time.perf_counter()
    code = main(["fast", "apply", str(EXAMPLES / "starry_night-fast.safetensors"), str(EXAMPLES / "tubingen.jpg"),
                 "--image-size", "512", "-o", str(fast_out), *force])  # fmt: skip
    print(f"(feed-forward model: {time.perf_counter() - start:.2f} s for a 512 px image, loading included)")
    if code:
        return code
    # Any style at run time: the bundled AdaIN decoder with a painting it has never been given as a model.
    start = time.perf_counter()
    code = main(["adain", "apply", str(EXAMPLES / "adain-lite0.safetensors"), str(EXAMPLES / "tubingen.jpg"),
                 "--style", str(EXAMPLES / "shipwreck.jpg"), "--image-size", "512", "-o", str(adain_out),
                 *force])  # fmt: skip
    print(f"(AdaIN, any style: {time.perf_counter() - start:.2f} s for a 512 px image, loading included)")
    return code


def _run_info(args: argparse.Namespace) -> int:
    from brushwork.records import read_record

    print(json.dumps(read_record(args.image).to_dict(), indent=2, sort_keys=True))
    return 0
