"""``brushwork <verb>``: parse, call the library, print. No logic of its own."""

from __future__ import annotations

import argparse
import json
import signal
import sys
from dataclasses import fields
from pathlib import Path

from brushwork.errors import BrushworkError

EXAMPLES = Path(__file__).parent / "examples"


def _float_list(text: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from exc


def _int_list(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected comma-separated whole numbers, got {text!r}") from exc


def _name_list(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def _add_backbone_options(g: argparse._ArgumentGroup) -> None:
    from brushwork.backbones import BACKBONES, LAYOUTS

    g.add_argument("--backbone", choices=BACKBONES, default="auto")
    g.add_argument("--weights", help="backbone weights file (.pth or .safetensors)")
    g.add_argument(
        "--weights-layout", choices=LAYOUTS, default="torchvision", help="caffe: BGR, 0-255, mean-subtracted"
    )
    g.add_argument("--pooling", choices=("max", "avg"), default="max")
    g.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")


def _progress_bar(total: int, unit: str = "it"):
    from tqdm import tqdm

    # In a log file, redraw every 10 s rather than many times a second.
    interval = 0.1 if sys.stderr.isatty() else 10.0
    return tqdm(total=total, unit=unit, dynamic_ncols=True, file=sys.stderr, mininterval=interval)


def _add_stylize_options(p: argparse.ArgumentParser) -> None:
    from brushwork.images import DEFAULT_MAX_PIXELS
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
    g.add_argument("--style-blend-weights", type=_float_list, default=None, help="e.g. 3,7 for two styles")
    g.add_argument("--preserve-colors", choices=MODES, default=d.preserve_colors)
    g.add_argument("--original-colors", action="store_true", help="same as --preserve-colors luminance")
    g.add_argument("--init", choices=("content", "noise"), default=d.init)
    g.add_argument("--init-image", help="start from this image instead")
    g.add_argument("--seed", type=int, default=d.seed)
    g = p.add_argument_group("engine")
    g.add_argument("--optimizer", choices=OPTIMIZERS, default=d.optimizer)
    g.add_argument("--learning-rate", type=float, default=d.learning_rate, help="Adam only")
    g.add_argument("--scales", type=_int_list, default=None, help="coarse-to-fine sizes, e.g. 512,1024,2048")
    g.add_argument("--fine-iterations", type=int, default=None, help="iterations at each finer scale")
    g.add_argument("--content-layers", type=_name_list, default=None, help="e.g. relu4_2")
    g.add_argument("--style-layers", type=_name_list, default=None, help="e.g. relu1_1,relu2_1,relu3_1")
    _add_backbone_options(g)
    g = p.add_argument_group("run")
    g.add_argument("--save-every", type=int, default=0, help="write an intermediate image every N iterations")
    g.add_argument("--resume", action="store_true", help="continue from the latest intermediate of this output")
    g.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS, help="refuse larger input images")
    g.add_argument("--params-from", help="take the options stored in a brushwork PNG (flags given here win)")
    g.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="brushwork", description="brushwork: an AI art studio")
    parser.add_argument("--version", action="store_true", help="print the version")
    sub = parser.add_subparsers(dest="verb")

    p = sub.add_parser("stylize", help="paint a photo in the style of one or more paintings (Gatys et al.)")
    p.add_argument("content", help="the photo")
    p.add_argument("--style", nargs="+", required=True, help="one or more style images")
    _add_stylize_options(p)

    p = sub.add_parser("demo", help="stylise the bundled example photo offline (a quick first run)")
    p.add_argument("-o", "--output", default="brushwork-demo.png")
    p.add_argument("--force", action="store_true")
    p.add_argument("--image-size", type=int, default=256)
    p.add_argument("--iterations", type=int, default=150)

    p = sub.add_parser("info", help="print the parameters a brushwork image was made with")
    p.add_argument("image")

    fast = sub.add_parser("fast", help="per-style feed-forward networks: train once, stylise in milliseconds")
    fast_sub = fast.add_subparsers(dest="fast_verb", required=True)
    p = fast_sub.add_parser("train", help="train a network for one style on a folder of photos")
    p.add_argument("--style", required=True, help="the style image")
    p.add_argument("--content-dir", required=True, help="folder of training photos (searched recursively)")
    p.add_argument("-o", "--output", required=True, help="MODEL.safetensors (settings go to MODEL.json)")
    p.add_argument("--resume", action="store_true", help="continue training OUTPUT where it stopped")
    p.add_argument("--force", action="store_true", help="overwrite an existing model")
    p.add_argument("-q", "--quiet", action="store_true")
    from brushwork.style.feedforward import FastConfig

    _add_training_options(p, FastConfig())

    p = fast_sub.add_parser("export", help="write a trained network as ONNX, checked against onnxruntime")
    p.add_argument("model", help="MODEL.safetensors")
    p.add_argument("-o", "--output", required=True, help="MODEL.onnx")
    p.add_argument("--force", action="store_true")

    p = fast_sub.add_parser("apply", help="stylise images with a trained network")
    p.add_argument("model", help="MODEL.safetensors from 'brushwork fast train'")
    p.add_argument("images", nargs="+")
    p.add_argument("-o", "--output", help="output .png (one input image only)")
    p.add_argument("--out-dir", help="folder for the outputs (default: here)")
    p.add_argument("--strength", type=float, default=1.0, help="0 = the photo, 1 = full style")
    p.add_argument("--preserve-colors", choices=("none", "luminance"), default="none")
    p.add_argument("--image-size", type=int, help="resize the long side first")
    p.add_argument("--device", default="auto")
    p.add_argument("--max-pixels", type=int, default=None)
    p.add_argument("--force", action="store_true")

    p = sub.add_parser("video", help="stylise a video frame by frame, steadied, audio kept (fast or adain)")
    p.add_argument("input", help="the video (anything FFmpeg reads)")
    p.add_argument("--model", required=True, help="a 'fast' or 'adain' .safetensors model")
    p.add_argument("--style", nargs="+", help="style image(s), for an adain model")
    p.add_argument("--alpha", type=float, default=1.0, help="adain: 0 = the video, 1 = full style")
    p.add_argument("--strength", type=float, default=1.0, help="fast: 0 = the video, 1 = full style")
    p.add_argument("--stabilize", type=float, default=0.5, help="0 = off; higher = steadier still areas (< 1)")
    p.add_argument("--max-frames", type=int, help="stop after N frames")
    p.add_argument("--crf", type=int, default=18, help="H.264 quality: lower is better and larger")
    p.add_argument("-o", "--output", required=True, help="OUT.mp4")
    p.add_argument("--force", action="store_true")
    p.add_argument("-q", "--quiet", action="store_true")
    _add_backbone_options(p.add_argument_group("backbone (adain models)"))

    gan = sub.add_parser("gan", help="train GANs on your own image folders; sample by seed and class")
    gan_sub = gan.add_subparsers(dest="gan_verb", required=True)
    p = gan_sub.add_parser("train", help="train on a folder (class = sub-folder with --conditional) or Fashion-MNIST")
    p.add_argument("data", help="image folder, a folder of Fashion-MNIST IDX files, or 'fashion-mnist'")
    p.add_argument("--out", required=True, help="run folder (options, log, samples, checkpoint)")
    p.add_argument("--conditional", action="store_true", help="labels from sub-folder names")
    p.add_argument("--resolution", type=int, choices=(32, 64, 128), help="default: from the data")
    p.add_argument("--channels", type=int, choices=(1, 3), help="default: 1 if every image is grey")
    p.add_argument("--loss", choices=("hinge", "nonsaturating"), default=None)
    p.add_argument("--upsample", choices=("resize", "transposed"), default=None)
    p.add_argument("--augment", action="store_true", help="DiffAugment, for small datasets")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--force", action="store_true", help="start the run folder over")
    p.add_argument("--device", default="auto")
    p.add_argument("-q", "--quiet", action="store_true")
    g = p.add_argument_group("training")
    for name, kind in (("steps", int), ("batch_size", int), ("latent", int), ("g_width", int), ("d_width", int),
                       ("lr_g", float), ("lr_d", float), ("ema", float), ("seed", int), ("checkpoint_every", int),
                       ("sample_every", int)):  # fmt: skip
        g.add_argument("--" + name.replace("_", "-"), type=kind, default=None)

    for verb, text in (("sample", "images by seed, class and truncation"), ("interpolate", "a latent walk as GIF")):
        p = gan_sub.add_parser(verb, help=text)
        p.add_argument("run", help="run folder from 'brushwork gan train'")
        p.add_argument("--seeds", default="0-63" if verb == "sample" else "0-3", help="e.g. 0-63 or 1,5,9")
        p.add_argument("--class", dest="class_name", help="class name (conditional runs)")
        p.add_argument("--truncation", type=float, help="e.g. 0.7: closer to typical, less varied")
        p.add_argument("-o", "--output", required=True)
        p.add_argument("--force", action="store_true")
        if verb == "sample":
            p.add_argument("--grid", action="store_true", help="one PNG grid instead of a folder of PNGs")
        else:
            p.add_argument("--frames", type=int, default=24, help="frames between two seeds")

    ad = sub.add_parser("adain", help="arbitrary style transfer (AdaIN): any style image at run time")
    ad_sub = ad.add_subparsers(dest="adain_verb", required=True)
    p = ad_sub.add_parser("train", help="train a decoder on a folder of photos and a folder of paintings")
    p.add_argument("--content-dir", required=True)
    p.add_argument("--style-dir", required=True)
    p.add_argument("-o", "--output", required=True, help="MODEL.safetensors (settings go to MODEL.json)")
    p.add_argument("--encoder-layer", help="backbone layer to encode to (default relu4_1 for VGG, block4 for Lite0)")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--force", action="store_true")
    p.add_argument("-q", "--quiet", action="store_true")
    from brushwork.style.adain import AdainConfig

    _add_training_options(p, AdainConfig())

    p = ad_sub.add_parser("apply", help="stylise a photo with any style image(s)")
    p.add_argument("model")
    p.add_argument("content")
    p.add_argument("--style", nargs="+", required=True)
    p.add_argument("--style-weights", type=_float_list, help="mix of several styles, e.g. 1,3")
    p.add_argument("--alpha", type=float, default=1.0, help="0 = the photo, 1 = full style")
    p.add_argument("--mask", help="white paints the first style, black the second")
    p.add_argument("--preserve-colors", choices=("none", "luminance", "histogram"), default="none")
    p.add_argument("--image-size", type=int, help="resize the photo's long side first")
    p.add_argument("--style-size", type=int, help="long side of the style images (default: the photo's)")
    p.add_argument("-o", "--output", help="output .png (default: CONTENT-STYLE.png here)")
    p.add_argument("--force", action="store_true")
    _add_backbone_options(p.add_argument_group("backbone (the one the decoder was trained on)"))

    p = ad_sub.add_parser("export", help="write encoder + AdaIN + decoder as ONNX (inputs: content, style)")
    p.add_argument("model")
    p.add_argument("-o", "--output", required=True, help="MODEL.onnx")
    p.add_argument("--force", action="store_true")
    _add_backbone_options(p.add_argument_group("backbone (the one the decoder was trained on)"))
    return parser


def _stylize_params_from(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """Parse twice: options stored in --params-from become defaults, so flags on the line still win."""
    args = parser.parse_args(argv)
    if args.verb != "stylize" or not args.params_from:
        return args
    from brushwork.images import read_parameters
    from brushwork.style.gatys import StyleConfig

    stored = read_parameters(args.params_from)
    keys = {f.name for f in fields(StyleConfig)} | {"weights_layout", "pooling"}
    defaults = {k: v for k, v in stored.items() if k in keys}
    if "style_blend" in defaults:
        defaults["style_blend_weights"] = defaults.pop("style_blend")
    if stored.get("backbone") in ("vgg16", "vgg19", "lite0"):
        defaults["backbone"] = stored["backbone"]
    if defaults.get("init") not in ("content", "noise"):
        defaults.pop("init", None)
    stylize_parser = parser._subparsers._group_actions[0].choices["stylize"]  # noqa: SLF001
    stylize_parser.set_defaults(**defaults)
    return parser.parse_args(argv)


def _run_stylize(args: argparse.Namespace) -> int:
    from brushwork.api import stylize
    from brushwork.files import check_output_path
    from brushwork.images import save_image

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
                bar = _progress_bar(step.total)
            bar.update(1)
            if step.step % 10 == 0 or step.step == step.total:
                bar.set_postfix({k: f"{v.item():.3g}" for k, v in step.losses.items()}, refresh=False)
        if args.save_every and step.step % args.save_every == 0:
            from brushwork.images import tensor_to_image

            state = {"step": step.step, "scale": step.scale, "content": Path(args.content).name, "options": options}
            save_image(tensor_to_image(step.image), str(step_path).format(step.step), state)

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
        from brushwork.images import tensor_to_image

        partial = output.with_name(output.stem + ".interrupted.png")
        save_image(tensor_to_image(step.image), partial, {"interrupted_at_step": step.step, **options})
        print(f"brushwork: interrupted; the image so far is in {partial} (continue with --init-image)", file=sys.stderr)
        return 130
    if bar is not None:
        bar.close()
    save_image(result, output, result.info["parameters"])
    print(output)
    return 0


def _run_fast(args: argparse.Namespace) -> int:
    return {"train": _run_fast_train, "apply": _run_fast_apply, "export": _run_fast_export}[args.fast_verb](args)


def _run_fast_export(args: argparse.Namespace) -> int:
    import torch

    from brushwork.files import check_output_path
    from brushwork.style.export import export_onnx, max_difference
    from brushwork.style.feedforward import load_feedforward

    output = check_output_path(args.output, args.force, ".onnx")
    net, _ = load_feedforward(args.model)
    export_onnx(net, output, (torch.rand(1, 3, 64, 64),), ["image"])
    # Check on a size unlike the one traced, so a shape baked into the graph would show.
    diff = max_difference(net, output, {"image": torch.rand(2, 3, 45, 70)})
    print(f"{output}  (max difference to PyTorch: {diff:.2e})")
    return 0


def _add_training_options(p: argparse.ArgumentParser, defaults) -> None:
    """A flag for each number in a training config dataclass (unset flags keep the config's default)."""
    g = p.add_argument_group("training")
    for f in fields(defaults):
        value = getattr(defaults, f.name)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            g.add_argument("--" + f.name.replace("_", "-"), type=type(value), default=None, help=f"default {value}")
    _add_backbone_options(g)


def _config_from_args(config_cls, args: argparse.Namespace):
    given = {f.name: getattr(args, f.name) for f in fields(config_cls) if getattr(args, f.name, None) is not None}
    return config_cls(**given), given


def _train(run, output: Path, quiet: bool) -> int:
    """Run ``run(on_step)`` with a progress bar; Ctrl-C ends cleanly with the checkpoint saved."""
    bar = None

    def on_step(step) -> None:
        nonlocal bar
        if quiet:
            return
        if bar is None:
            bar = _progress_bar(step.total, unit="step")
            bar.update(step.step - 1)
        bar.update(1)
        if step.step % 10 == 0:
            bar.set_postfix({k: f"{v:.3g}" for k, v in step.losses.items()}, refresh=False)

    try:
        run(on_step)
    except KeyboardInterrupt:
        print(f"\nbrushwork: interrupted; progress saved in {output} (continue with --resume)", file=sys.stderr)
        return 130
    finally:
        if bar is not None:
            bar.close()
    print(output)
    return 0


def _run_fast_train(args: argparse.Namespace) -> int:
    from brushwork.api import describe_input
    from brushwork.backbones import load_backbone
    from brushwork.device import pick_device
    from brushwork.files import check_output_path
    from brushwork.images import load_image
    from brushwork.style.feedforward import FastConfig, train_feedforward

    output = check_output_path(args.output, args.force, ".safetensors", args.resume)
    config, given = _config_from_args(FastConfig, args)
    style = load_image(args.style)
    backbone = load_backbone(args.backbone, args.weights, args.weights_layout, args.pooling)
    return _train(
        lambda on_step: train_feedforward(
            style, args.content_dir, output, backbone, config, pick_device(args.device), resume=args.resume,
            resume_steps=given.get("steps"), on_step=on_step, style_info=describe_input(args.style),
        ),
        output, args.quiet,
    )  # fmt: skip


def _run_fast_apply(args: argparse.Namespace) -> int:
    from brushwork.api import describe_input
    from brushwork.device import pick_device
    from brushwork.files import check_output_path
    from brushwork.images import DEFAULT_MAX_PIXELS, load_image, save_image
    from brushwork.style.feedforward import apply_feedforward, load_feedforward

    if args.output and len(args.images) > 1:
        raise BrushworkError("-o names one output; for several images use --out-dir")
    out_dir = Path(args.out_dir or ".")
    if not out_dir.is_dir():
        raise BrushworkError(f"{out_dir}: output folder does not exist")
    model = Path(args.model)
    outputs = (
        [Path(args.output)] if args.output else [out_dir / f"{Path(i).stem}-{model.stem}.png" for i in args.images]
    )
    for path in outputs:
        check_output_path(path, args.force)
    device = pick_device(args.device)
    net, meta = load_feedforward(model, device)
    for src, dst in zip(args.images, outputs, strict=True):
        img = load_image(src, args.max_pixels or DEFAULT_MAX_PIXELS)
        (result,) = apply_feedforward(net, [img], args.strength, args.preserve_colors, args.image_size, device)
        params = {
            "engine": "fast",
            "model": describe_input(model),
            "style": meta.get("style"),
            "content": describe_input(src),
            "strength": args.strength,
            "preserve_colors": args.preserve_colors,
            "image_size": args.image_size,
        }
        save_image(result, dst, params)
        print(dst)
    return 0


def _run_adain(args: argparse.Namespace) -> int:
    from brushwork.backbones import load_backbone
    from brushwork.device import pick_device
    from brushwork.files import check_output_path
    from brushwork.images import load_image
    from brushwork.style import adain

    backbone = load_backbone(args.backbone, args.weights, args.weights_layout, args.pooling)
    if args.adain_verb == "train":
        output = check_output_path(args.output, args.force, ".safetensors", args.resume)
        config, given = _config_from_args(adain.AdainConfig, args)
        config.encoder_layer = args.encoder_layer
        return _train(
            lambda on_step: adain.train_adain(
                args.content_dir, args.style_dir, output, backbone, config, pick_device(args.device),
                resume=args.resume, resume_steps=given.get("steps"), on_step=on_step,
            ),
            output, args.quiet,
        )  # fmt: skip
    if args.adain_verb == "export":
        import torch

        from brushwork.style.export import export_onnx, max_difference

        output = check_output_path(args.output, args.force, ".onnx")
        model = adain.load_adain(args.model, backbone)
        export_onnx(model, output, (torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 64)), ["content", "style"])
        inputs = {"content": torch.rand(1, 3, 48, 80), "style": torch.rand(1, 3, 72, 56)}
        print(f"{output}  (max difference to PyTorch: {max_difference(model, output, inputs):.2e})")
        return 0

    from brushwork.api import describe_input
    from brushwork.images import save_image

    output = check_output_path(args.output or f"{Path(args.content).stem}-{Path(args.style[0]).stem}.png", args.force)
    device = pick_device(args.device)
    model = adain.load_adain(args.model, backbone, device)
    result = adain.apply_adain(
        model, load_image(args.content), [load_image(s) for s in args.style], args.style_weights, args.alpha,
        load_image(args.mask) if args.mask else None, args.preserve_colors, args.image_size, args.style_size, device,
    )  # fmt: skip
    params = {"engine": "adain", "model": describe_input(args.model), "content": describe_input(args.content),
              "styles": [describe_input(s) for s in args.style], "style_weights": args.style_weights,
              "alpha": args.alpha, "mask": describe_input(args.mask) if args.mask else None,
              "preserve_colors": args.preserve_colors, "image_size": args.image_size, "style_size": args.style_size,
              "backbone": backbone.name}  # fmt: skip
    save_image(result, output, params)
    print(output)
    return 0


def _run_video(args: argparse.Namespace) -> int:
    from brushwork.checkpoints import load_checkpoint
    from brushwork.device import pick_device
    from brushwork.files import check_output_path
    from brushwork.images import load_image
    from brushwork.style.video import stylize_video

    output = check_output_path(args.output, args.force, ".mp4")
    device = pick_device(args.device)
    _, meta = load_checkpoint(args.model, kind=None)
    if meta.get("kind") == "fast-style":
        from brushwork.style.feedforward import apply_feedforward, load_feedforward

        net, _ = load_feedforward(args.model, device)

        def stylise(frame):
            return apply_feedforward(net, [frame], args.strength, device=device)[0]
    elif meta.get("kind") == "adain":
        from brushwork.backbones import load_backbone
        from brushwork.style.adain import apply_adain, load_adain

        if not args.style:
            raise BrushworkError("an adain model needs --style")
        model = load_adain(args.model, load_backbone(args.backbone, args.weights, args.weights_layout), device)
        styles = [load_image(s) for s in args.style]

        def stylise(frame):
            return apply_adain(model, frame, styles, alpha=args.alpha, device=device)
    else:
        raise BrushworkError(f"{args.model}: not a 'fast-style' or 'adain' model")
    bar = None

    def on_frame(done: int, total: int) -> None:
        nonlocal bar
        if not args.quiet:
            bar = bar or _progress_bar(total or None, unit="frame")
            bar.update(1)

    try:
        report = stylize_video(args.input, output, stylise, args.stabilize, args.max_frames, args.crf, on_frame)
    finally:
        if bar is not None:
            bar.close()
    print(f"{output}  ({report.frames} frames, {report.audio_streams} audio stream(s) kept, "
          f"{report.frames / report.seconds:.1f} frames/s, flicker {report.flicker:.2f}x the source's)")  # fmt: skip
    return 0


def _run_gan(args: argparse.Namespace) -> int:
    from brushwork.gan import sample as gs

    if args.gan_verb == "train":
        return _run_gan_train(args)
    g, cfg, classes = gs.load_run(args.run)
    label = gs.class_index(args.class_name, classes)
    seeds = gs.parse_seeds(args.seeds)
    params = dict(seeds=args.seeds, class_name=args.class_name, truncation=args.truncation)
    out = Path(args.output)
    from brushwork.files import atomic_write, check_output_path

    if args.gan_verb == "interpolate":
        check_output_path(out, args.force, ".gif")
        if not 1 <= args.frames <= 1000:
            raise BrushworkError("frames must be 1..1000")
        frames = gs.interpolate(g, cfg, seeds, label, args.frames, args.truncation)
        comment = gs.parameters(args.run, frames=args.frames, **params)
        atomic_write(out, lambda tmp: frames[0].save(tmp, format="GIF", save_all=True, append_images=frames[1:],
                                                     duration=40, loop=0, comment=comment))  # fmt: skip
        print(out)
        return 0
    import torch

    from brushwork.gan.train import image_grid
    from brushwork.images import save_image

    labels = [label] if label is not None or not cfg.classes else list(range(len(classes)))
    if args.grid:
        check_output_path(out, args.force)
        rows = [gs.generate(g, cfg, seeds, lab, args.truncation) for lab in labels]
        per_row = len(seeds) if len(labels) > 1 else min(8, len(seeds))
        grid = image_grid(torch.cat(rows), per_row)
        save_image(grid, out, {"engine": "gan", "run": Path(args.run).name, **params})
        print(out)
        return 0
    if out.exists() and any(out.iterdir()) and not args.force:
        raise BrushworkError(f"{out}: folder exists and is not empty; use --force to add to it")
    if not out.parent.is_dir():
        raise BrushworkError(f"{out.parent}: output folder does not exist")
    for lab in labels:
        folder = out / classes[lab] if cfg.classes and label is None else out
        folder.mkdir(parents=True, exist_ok=True)
        for seed, img in zip(seeds, gs.to_images(gs.generate(g, cfg, seeds, lab, args.truncation)), strict=True):
            meta = {"engine": "gan", "run": Path(args.run).name, "seed": seed,
                    "class_name": classes[lab] if cfg.classes else None, "truncation": args.truncation}  # fmt: skip
            save_image(img, folder / f"seed{seed:05d}.png", meta)
    print(out)
    return 0


def _run_gan_train(args: argparse.Namespace) -> int:
    import shutil
    from dataclasses import asdict

    from brushwork.device import pick_device
    from brushwork.gan.data import load_dataset
    from brushwork.gan.train import CHECKPOINT, GanConfig, train_gan

    out = Path(args.out)
    if not out.parent.is_dir():
        raise BrushworkError(f"{out.parent}: folder does not exist")
    if args.resume and not (out / CHECKPOINT).exists():
        raise BrushworkError(f"{out}: nothing to resume")
    if out.exists() and any(out.iterdir()) and not (args.resume or args.force):
        raise BrushworkError(f"{out}: run folder is not empty; use --resume to continue it or --force to start over")
    if args.force and not args.resume and out.exists():
        shutil.rmtree(out)
    data = load_dataset(args.data, args.conditional, args.resolution, args.channels)
    if data.skipped:
        print(f"brushwork: skipped {len(data.skipped)} unreadable image(s), e.g. {data.skipped[0]}", file=sys.stderr)
    given = {k: v for k, v in vars(args).items() if k in asdict(GanConfig()) and v is not None}
    config = GanConfig(**{**given, "resolution": data.resolution, "channels": data.channels,
                          "classes": len(data.class_names) if args.conditional else 0})  # fmt: skip
    if args.conditional and not data.class_names:
        raise BrushworkError("--conditional needs class labels (sub-folders or Fashion-MNIST)")
    if not args.quiet:
        print(
            json.dumps({"config": asdict(config), "images": len(data.images), "classes": data.class_names}),
            file=sys.stderr,
        )  # every option, printed at start
    device = pick_device(args.device)

    def run(on_step) -> None:
        train_gan(data, out, config, device, args.resume, given.get("steps"), on_step)

    return _train(run, out, args.quiet)


def _latest_intermediate(existing: list[Path], content: str, options: dict) -> tuple[int, str]:
    """The step and path of the newest intermediate, if it was made by this same run."""
    from brushwork.images import read_parameters

    if not existing:
        raise BrushworkError("--resume: no intermediates of this output found (they come from --save-every)")
    latest = existing[-1]
    state = read_parameters(latest)
    # JSON turns tuples into lists; compare like with like.
    if state.get("options") != json.loads(json.dumps(options)) or state.get("content") != content:
        raise BrushworkError(f"--resume: {latest} was made with other inputs or options; rerun with --force")
    return int(state["step"]), str(latest)


def _run_demo(args: argparse.Namespace) -> int:
    """The optimisation engine on the bundled photo, then the bundled feed-forward model on it, timed."""
    fast_out = Path(args.output).with_name(Path(args.output).stem + "-fast.png")
    from brushwork.files import check_output_path

    check_output_path(fast_out, args.force)
    argv = [
        "stylize",
        str(EXAMPLES / "tubingen.jpg"),
        "--style",
        str(EXAMPLES / "starry_night.jpg"),
        "--image-size",
        str(args.image_size),
        "--iterations",
        str(args.iterations),
        "-o",
        args.output,
    ]
    code = main(argv + (["--force"] if args.force else []))
    if code:
        return code
    import time

    start = time.perf_counter()
    code = main(["fast", "apply", str(EXAMPLES / "starry_night-fast.safetensors"), str(EXAMPLES / "tubingen.jpg"),
                 "--image-size", "512", "-o", str(fast_out)] + (["--force"] if args.force else []))  # fmt: skip
    print(f"(feed-forward model: {time.perf_counter() - start:.2f} s for a 512 px image, loading included)")
    return code


def _run_info(args: argparse.Namespace) -> int:
    from brushwork.images import read_parameters

    print(json.dumps(read_parameters(args.image), indent=2, sort_keys=True))
    return 0


def _memory_error(exc: BaseException) -> bool:
    text = str(exc).lower()
    return isinstance(exc, MemoryError) or "out of memory" in text or "can't allocate memory" in text


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else argv
    # A second Ctrl-C during the save would leave nothing; make the first one a clean exception.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        args = _stylize_params_from(parser, argv)
        if args.version:
            from brushwork import __version__

            print(__version__)
            return 0
        handlers = {
            "stylize": _run_stylize,
            "demo": _run_demo,
            "info": _run_info,
            "fast": _run_fast,
            "adain": _run_adain,
            "video": _run_video,
            "gan": _run_gan,
        }
        if args.verb not in handlers:
            parser.print_help()
            return 2
        return handlers[args.verb](args)
    except BrushworkError as exc:
        print(f"brushwork: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except (RuntimeError, MemoryError) as exc:
        if _memory_error(exc):
            print("brushwork: error: out of memory; try a smaller --image-size or --scales", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
