"""brushwork adain train | apply | export | slim: arbitrary style transfer."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from brushwork import api
from brushwork.cli.common import (
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
    add_training_options,
    add_verb_group,
    apply_taste,
    note_taste,
    output_suffix,
    outputs_for,
    precision,
    protection_from_args,
    run_style_training,
    settings_from,
)
from brushwork.cli.fast import add_slim, run_export, run_slim
from brushwork.cli.styles import add_style_text_options, pick_by_text
from brushwork.errors import BrushworkError

BACKBONE_GROUP = "backbone (the one the decoder was trained on)"


def register(sub) -> dict:
    """Add this capability's verbs to ``sub``; return {verb: handler}."""
    _, ad_sub = add_verb_group(sub, "adain", "arbitrary style transfer (AdaIN): any style image at run time",
                               "adain_verb")  # fmt: skip
    p = add_parser(ad_sub, "train", "train a decoder on a folder of photos and a folder of paintings")
    p.add_argument("--content-dir", required=True, help="folder of training photos (searched recursively)")
    p.add_argument("--style-dir", required=True, help="folder of paintings (searched recursively)")
    add_training_options(p, api.SETTINGS["adain-train"])

    p = add_parser(ad_sub, "apply", "stylise photos (files or folders) with any style image(s)")
    p.add_argument("model", help="'magenta' (Magenta's arbitrary network, bundled; the best for any style) or a "
                   "MODEL.safetensors from 'brushwork adain train'")  # fmt: skip
    p.add_argument("content", nargs="+", help="photos, or folders of them")
    p.add_argument("--style", nargs="+", default=[], help="one or more style images (or --style-text)")
    add_output_options(p, "output image, .png, .jpg, .webp or .tif (one photo only)", "PHOTO-STYLE.png here")
    p.add_argument("--out-dir", help="folder for the outputs (default: here)")
    add_bit_depth(p)
    p.add_argument("--style-mask", "--mask", dest="style_mask",
                   help="white paints the first style, black the second (grey: a mix)")  # fmt: skip
    add_settings(p, api.SETTINGS["adain"], skip=("backbone",))
    add_run_options(p, device=False)
    add_style_text_options(p, "style image")
    add_taste_options(p)
    add_protection_options(p)
    g = p.add_argument_group(BACKBONE_GROUP)
    add_settings(g, api.SETTINGS["adain"], only=("backbone",))
    add_backbone_options(g, pooling=False, backbone=False)
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
    return run_style_training(args, api.adain_train, api.AdainConfig, args.content_dir, args.style_dir)


def _run_apply(args: argparse.Namespace) -> int:
    settings_from(api.SETTINGS["adain"], args)  # checked before anything loads
    if not args.style and not args.style_text:
        raise BrushworkError("give --style images, or --style-text with --style-library")
    sources = api.image_files(args.content)
    pick = pick_by_text(args, "images")
    styles = [pick, *args.style] if pick else args.style  # the words' choice comes first (white in a mask)
    style_paths = [str(pick.best.path), *args.style] if pick else args.style
    outputs = outputs_for(sources, style_paths[0], args.output, args.out_dir, output_suffix(args), "adain")
    for path in outputs:
        api.check_output_path(path, args.force, tuple(api.IMAGE_SUFFIXES))
    model = api.load_model(args.model, backbone=args.backbone, weights=args.weights,
                           weights_layout=args.weights_layout, device=args.device)  # fmt: skip
    protection = protection_from_args(args)
    taste = apply_taste(args, "adain", sources[0], style_paths, model=model, max_pixels=args.max_pixels,
                        style_blend_weights=args.style_blend_weights, style_size=args.style_size)  # fmt: skip
    settings = settings_from(api.SETTINGS["adain"], args, len(styles))  # with the taste's choice
    painted_records = {}

    def painted():
        for src, dst in zip(sources, outputs, strict=True):
            with precision(args):
                result = api.adain_apply(model, src, styles, style_mask=args.style_mask, weights=args.weights,
                                         max_pixels=args.max_pixels, **settings.values())  # fmt: skip
            painted_records[str(Path(dst))] = api.record_of(result)
            yield note_taste(result, taste), dst

    # protected a batch at a time: one watermark call, one registry transaction per batch
    for dst in api.save_all(painted(), force=args.force, bit_depth=args.bit_depth, protection=protection):
        print(dst)
        for note in painted_records.pop(str(dst)).extra.get("notes", []):
            print(f"brushwork: note: {note}", file=sys.stderr)
    return 0
