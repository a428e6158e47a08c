"""brushwork adain train | apply | export | slim: arbitrary style transfer."""

from __future__ import annotations

import argparse

from brushwork import api
from brushwork.cli.common import (
    Replay,
    add_backbone_options,
    add_bit_depth,
    add_output_options,
    add_params_from,
    add_parser,
    add_preserve_colors,
    add_protection_options,
    add_run_options,
    add_strength,
    add_style_blend_weights,
    add_taste_options,
    add_training_options,
    add_verb_group,
    apply_taste,
    backbone_options,
    config_values,
    note_taste,
    output_suffix,
    outputs_for,
    precision,
    protection_from_args,
    train_with_progress,
)
from brushwork.cli.fast import add_slim, run_export, run_slim
from brushwork.errors import BrushworkError

BACKBONE_GROUP = "backbone (the one the decoder was trained on)"


def register(sub) -> dict:
    """Add this capability's verbs to ``sub``; return {verb: handler}."""
    _, ad_sub = add_verb_group(sub, "adain", "arbitrary style transfer (AdaIN): any style image at run time",
                               "adain_verb")  # fmt: skip
    p = add_parser(ad_sub, "train", "train a decoder on a folder of photos and a folder of paintings")
    p.add_argument("--content-dir", required=True, help="folder of training photos (searched recursively)")
    p.add_argument("--style-dir", required=True, help="folder of paintings (searched recursively)")
    add_training_options(p, api.AdainConfig)

    p = add_parser(ad_sub, "apply", "stylise photos (files or folders) with any style image(s)")
    p.add_argument("model", help="MODEL.safetensors from 'brushwork adain train'")
    p.add_argument("content", nargs="+", help="photos, or folders of them")
    p.add_argument("--style", nargs="+", default=[], help="one or more style images")
    p.add_argument("--style-text", help="pick the style from --style-dir by words (CLIP similarity)")
    p.add_argument("--style-dir", help="a folder of style images for --style-text")
    p.add_argument("--clip-model", default="ViT-B-32", help="an open_clip model name (for --style-text)")
    p.add_argument("--clip-pretrained", default="openai", help="its weights' tag in the Hugging Face cache")
    p.add_argument("--clip-weights", help="a CLIP weights file instead of the cache")
    add_output_options(p, "output image, .png, .jpg, .webp or .tif (one photo only)", "PHOTO-STYLE.png here")
    p.add_argument("--out-dir", help="folder for the outputs (default: here)")
    add_bit_depth(p)
    add_style_blend_weights(p)
    add_strength(p)
    p.add_argument("--style-mask", "--mask", dest="style_mask",
                   help="white paints the first style, black the second (grey: a mix)")  # fmt: skip
    add_preserve_colors(p)
    p.add_argument("--image-size", type=int, help="resize the photo's long side first")
    p.add_argument("--style-size", type=int, help="long side of the style images (default: the photo's)")
    add_run_options(p, device=False)
    add_taste_options(p)
    add_protection_options(p)
    add_backbone_options(p.add_argument_group(BACKBONE_GROUP), pooling=False)
    add_params_from(p, Replay(p, "adain", lambda a: {"content": a.content[0] if len(a.content) == 1 else None,
                                                    "styles": a.style, "model": a.model}))  # fmt: skip

    p = add_parser(ad_sub, "export", "write encoder + AdaIN + decoder as ONNX (inputs: content, style)")
    p.add_argument("model", help="MODEL.safetensors")
    add_output_options(p, "MODEL.onnx", required=True)
    add_backbone_options(p.add_argument_group(BACKBONE_GROUP), pooling=False, device=False)
    add_slim(ad_sub, "adain")
    return {"adain": _run_adain}


def _run_adain(args: argparse.Namespace) -> int:
    handlers = {"train": _run_train, "apply": _run_apply, "slim": run_slim,
                "export": lambda a: run_export(api.adain_export, a, backbone=a.backbone, weights=a.weights,
                                               weights_layout=a.weights_layout)}  # fmt: skip
    return handlers[args.adain_verb](args)


def _run_train(args: argparse.Namespace) -> int:
    return train_with_progress(
        lambda on_step: api.adain_train(args.content_dir, args.style_dir, args.output, resume=args.resume,
                                        force=args.force, device=args.device, on_step=on_step,
                                        **backbone_options(args), **config_values(api.AdainConfig, args)),
        args.output, args.quiet,
    )  # fmt: skip


def _run_apply(args: argparse.Namespace) -> int:
    if args.style_text:
        if not args.style_dir:
            raise BrushworkError("--style-text picks from a folder: give --style-dir")
        ranked = api.pick_styles(args.style_text, args.style_dir, clip_model=args.clip_model,
                                 clip_pretrained=args.clip_pretrained, clip_weights=args.clip_weights,
                                 device=args.device)  # fmt: skip
        for path, score in ranked[:3]:
            print(f"  {score:.3f}  {path}")
        args.style = [str(ranked[0][0]), *args.style]
    if not args.style:
        raise BrushworkError("give --style images, or --style-text with --style-dir")
    sources = api.image_files(args.content)
    outputs = outputs_for(sources, args.style[0], args.output, args.out_dir, output_suffix(args))
    for path in outputs:
        api.check_output_path(path, args.force, tuple(api.IMAGE_SUFFIXES))
    model = api.load_model(args.model, backbone=args.backbone, weights=args.weights,
                           weights_layout=args.weights_layout, device=args.device)  # fmt: skip
    protection = protection_from_args(args)
    taste = apply_taste(args, "adain", sources[0], args.style, model=model, max_pixels=args.max_pixels,
                        style_blend_weights=args.style_blend_weights, style_size=args.style_size)  # fmt: skip
    for src, dst in zip(sources, outputs, strict=True):
        with precision(args):
            result = api.adain_apply(
                model,
                src,
                args.style,
                style_blend_weights=args.style_blend_weights,
                strength=args.strength,
                style_mask=args.style_mask,
                preserve_colors=args.preserve_colors,
                image_size=args.image_size,
                style_size=args.style_size,
                weights=args.weights,
                max_pixels=args.max_pixels,
                style_text=args.style_text,
            )
        api.save(note_taste(result, taste), dst, force=args.force, bit_depth=args.bit_depth, protection=protection)
        print(dst)
    return 0
