"""brushwork fast train | apply | export | slim: per-style feed-forward networks."""

from __future__ import annotations

import argparse
import os

from brushwork import api
from brushwork.cli.common import (
    Replay,
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
from brushwork.cli.styles import add_style_text_options, pick_by_text
from brushwork.errors import BrushworkError


def add_slim(verb_sub, engine: str) -> None:
    p = add_parser(verb_sub, "slim", "copy a trained model without its training state, for sharing (apply only)")
    p.add_argument("model", help="MODEL.safetensors")
    add_output_options(p, "the slim MODEL.safetensors", required=True)


def run_slim(args: argparse.Namespace) -> int:
    out = api.slim_model(args.model, args.output, force=args.force)
    before, after = os.path.getsize(args.model), os.path.getsize(out)
    print(f"{out}  ({after / 1e6:.2f} MB, was {before / 1e6:.2f} MB)")
    return 0


def run_export(export, args: argparse.Namespace, **options) -> int:
    report = export(args.model, args.output, force=args.force, **options)
    print(f"{report.path}  (max difference to PyTorch: {report.max_difference:.2e})")
    return 0


def register(sub) -> dict:
    """Add this capability's verbs to ``sub``; return {verb: handler}."""
    _, fast_sub = add_verb_group(sub, "fast", "per-style feed-forward networks: train once, stylise in milliseconds",
                                 "fast_verb")  # fmt: skip
    p = add_parser(fast_sub, "train", "train a network for one style on a folder of photos")
    p.add_argument("--style", required=True, help="the style image")
    p.add_argument("--content-dir", required=True, help="folder of training photos (searched recursively)")
    add_training_options(p, api.SETTINGS["fast-train"])

    p = add_parser(fast_sub, "apply", "stylise photos (files or folders) with a trained network")
    p.add_argument("model", help="MODEL.safetensors from 'brushwork fast train' (with --style-library: the first "
                   "photo)")  # fmt: skip
    p.add_argument("images", nargs="*", help="photos, or folders of them")
    add_output_options(p, "output image, .png, .jpg, .webp or .tif (one photo only)", "PHOTO-MODEL.png here")
    p.add_argument("--out-dir", help="folder for the outputs (default: here)")
    add_bit_depth(p)
    add_settings(p, api.SETTINGS["fast"])
    add_run_options(p)
    add_style_text_options(p, "model")
    add_taste_options(p)
    add_protection_options(p)
    add_params_from(p, Replay(p, "fast", _replayed_inputs))

    p = add_parser(fast_sub, "export", "write a trained network as ONNX, checked against onnxruntime")
    p.add_argument("model", help="MODEL.safetensors")
    add_output_options(p, "MODEL.onnx", required=True)
    add_slim(fast_sub, "fast")
    return {"fast": _run_fast}


def _run_fast(args: argparse.Namespace) -> int:
    handlers = {"train": _run_fast_train, "apply": _run_fast_apply, "slim": run_slim,
                "export": lambda a: run_export(api.fast_export, a)}  # fmt: skip
    return handlers[args.fast_verb](args)


def _run_fast_train(args: argparse.Namespace) -> int:
    return run_style_training(args, api.fast_train, api.FastConfig, args.style, args.content_dir)


def _model_and_images(args: argparse.Namespace) -> tuple[str | None, list[str]]:
    """With --style-library the model is picked by words, so every positional argument is a photo."""
    if args.style_library:
        return None, [args.model, *args.images]
    if not args.images:
        raise BrushworkError("give a MODEL and photos (or --style-text with --style-library, and photos)")
    return args.model, args.images


def _replayed_inputs(args: argparse.Namespace) -> dict:
    model, images = _model_and_images(args)
    return {"content": images[0] if len(images) == 1 else None, "model": model}


def _run_fast_apply(args: argparse.Namespace) -> int:
    settings_from(api.SETTINGS["fast"], args)  # checked before anything loads
    model_path, images = _model_and_images(args)
    sources = api.image_files(images)
    pick = pick_by_text(args, "fast")
    model_path = str(pick.best.path) if pick else model_path
    outputs = outputs_for(sources, model_path, args.output, args.out_dir, output_suffix(args), "fast")
    for path in outputs:
        api.check_output_path(path, args.force, tuple(api.IMAGE_SUFFIXES))
    model = api.load_model(pick or model_path, device=args.device)
    protection = protection_from_args(args)
    taste = apply_taste(args, "fast", sources[0], model=model, max_pixels=args.max_pixels)
    settings = settings_from(api.SETTINGS["fast"], args)  # with the taste's choice

    def painted():
        for src, dst in zip(sources, outputs, strict=True):
            with precision(args):
                result = api.fast_apply(model, src, max_pixels=args.max_pixels, **settings.values())
            yield note_taste(result, taste), dst

    # protected a batch at a time: one watermark call, one registry transaction per batch
    for dst in api.save_all(painted(), force=args.force, bit_depth=args.bit_depth, protection=protection):
        print(dst)
    return 0
