"""brushwork adain train | apply | export: arbitrary style transfer."""

from __future__ import annotations

import argparse
from pathlib import Path

from brushwork.cli.common import (
    add_backbone_options,
    add_training_options,
    config_from_args,
    float_list,
    train_with_progress,
)


def register(sub) -> dict:
    """Add this capability's verbs to ``sub``; return {verb: handler}."""
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

    add_training_options(p, AdainConfig())

    p = ad_sub.add_parser("apply", help="stylise a photo with any style image(s)")
    p.add_argument("model")
    p.add_argument("content")
    p.add_argument("--style", nargs="+", required=True)
    p.add_argument("--style-weights", type=float_list, help="mix of several styles, e.g. 1,3")
    p.add_argument("--alpha", type=float, default=1.0, help="0 = the photo, 1 = full style")
    p.add_argument("--mask", help="white paints the first style, black the second")
    p.add_argument("--preserve-colors", choices=("none", "luminance", "histogram"), default="none")
    p.add_argument("--image-size", type=int, help="resize the photo's long side first")
    p.add_argument("--style-size", type=int, help="long side of the style images (default: the photo's)")
    p.add_argument("-o", "--output", help="output .png (default: CONTENT-STYLE.png here)")
    p.add_argument("--force", action="store_true")
    add_backbone_options(p.add_argument_group("backbone (the one the decoder was trained on)"))

    p = ad_sub.add_parser("export", help="write encoder + AdaIN + decoder as ONNX (inputs: content, style)")
    p.add_argument("model")
    p.add_argument("-o", "--output", required=True, help="MODEL.onnx")
    p.add_argument("--force", action="store_true")
    add_backbone_options(p.add_argument_group("backbone (the one the decoder was trained on)"))
    return {"adain": _run_adain}


def _run_adain(args: argparse.Namespace) -> int:
    from brushwork.backbones import load_backbone
    from brushwork.device import pick_device
    from brushwork.files import check_output_path
    from brushwork.media import load_image
    from brushwork.style import adain

    name = args.backbone if args.adain_verb == "train" else adain.encoder_name(args.model, args.backbone, args.weights)
    backbone = load_backbone(name, args.weights, args.weights_layout, args.pooling)
    if args.adain_verb == "train":
        output = check_output_path(args.output, args.force, ".safetensors", args.resume)
        config, given = config_from_args(adain.AdainConfig, args)
        config.encoder_layer = args.encoder_layer
        return train_with_progress(
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

    from brushwork.api import save
    from brushwork.records import describe_input, new_record

    output = check_output_path(args.output or f"{Path(args.content).stem}-{Path(args.style[0]).stem}.png", args.force)
    device = pick_device(args.device)
    model = adain.load_adain(args.model, backbone, device)
    result = adain.apply_adain(
        model, load_image(args.content), [load_image(s) for s in args.style], args.style_weights, args.alpha,
        load_image(args.mask) if args.mask else None, args.preserve_colors, args.image_size, args.style_size, device,
    )  # fmt: skip
    params = {"style_weights": args.style_weights, "alpha": args.alpha, "preserve_colors": args.preserve_colors,
              "image_size": args.image_size, "style_size": args.style_size, "backbone": backbone.name}  # fmt: skip
    inputs = {"content": describe_input(args.content), "styles": [describe_input(s) for s in args.style]}
    if args.mask:
        inputs["mask"] = describe_input(args.mask)
    record = new_record("adain", params, inputs=inputs, models={"model": describe_input(args.model)}, device=device)
    save(result, output, record, force=args.force)
    print(output)
    return 0
