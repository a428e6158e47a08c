"""brushwork fast train | apply | export: per-style feed-forward networks."""

from __future__ import annotations

import argparse
from pathlib import Path

from brushwork.cli.common import add_training_options, config_from_args, train_with_progress
from brushwork.errors import BrushworkError


def register(sub) -> dict:
    """Add this capability's verbs to ``sub``; return {verb: handler}."""
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

    add_training_options(p, FastConfig())

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
    return {"fast": _run_fast}


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


def _run_fast_train(args: argparse.Namespace) -> int:
    from brushwork.backbones import load_backbone
    from brushwork.device import pick_device
    from brushwork.files import check_output_path
    from brushwork.media import load_image
    from brushwork.records import describe_input
    from brushwork.style.feedforward import FastConfig, train_feedforward

    output = check_output_path(args.output, args.force, ".safetensors", args.resume)
    config, given = config_from_args(FastConfig, args)
    style = load_image(args.style)
    backbone = load_backbone(args.backbone, args.weights, args.weights_layout, args.pooling)
    return train_with_progress(
        lambda on_step: train_feedforward(
            style, args.content_dir, output, backbone, config, pick_device(args.device), resume=args.resume,
            resume_steps=given.get("steps"), on_step=on_step, style_info=describe_input(args.style),
        ),
        output, args.quiet,
    )  # fmt: skip


def _run_fast_apply(args: argparse.Namespace) -> int:
    from brushwork.api import save
    from brushwork.device import pick_device
    from brushwork.files import check_output_path
    from brushwork.media import DEFAULT_MAX_PIXELS, load_image
    from brushwork.records import describe_input, new_record
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
        params = {"strength": args.strength, "preserve_colors": args.preserve_colors, "image_size": args.image_size}
        record = new_record("fast", params, inputs={"content": describe_input(src), "styles": [meta.get("style")]},
                            models={"model": describe_input(model)}, device=device)  # fmt: skip
        save(result, dst, record, force=args.force)
        print(dst)
    return 0
