"""brushwork gan train | sample | interpolate | evaluate."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from brushwork import api
from brushwork.cli.common import (
    Replay,
    add_output_options,
    add_params_from,
    add_parser,
    add_protection_options,
    add_settings,
    add_verb_group,
    protection_from_args,
    settings_from,
    settings_values,
    train_with_progress,
)
from brushwork.errors import BrushworkError


def register(sub) -> dict:
    """Add this capability's verbs to ``sub``; return {verb: handler}."""
    _, gan_sub = add_verb_group(sub, "gan", "train GANs on your own image folders; sample by seed and class",
                                "gan_verb")  # fmt: skip
    p = add_parser(gan_sub, "train", "train on a folder (class = sub-folder with --conditional) or Fashion-MNIST")
    p.add_argument("data", help="image folder, a folder of Fashion-MNIST IDX files, or 'fashion-mnist'")
    add_output_options(p, "run folder (options, log, samples, checkpoint); created with its parents", required=True,
                       aliases=("--out",), force="start the run folder over (its contents are deleted)")  # fmt: skip
    add_settings(p, api.GanData)
    p.add_argument("--resume", action="store_true", help="continue the run in OUTPUT where it stopped")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar, no settings printed")
    g = p.add_argument_group("training")
    add_settings(g, api.GanConfig, keep_defaults=False, choices={"eval_extractor": tuple(api.EXTRACTORS)})
    p.epilog = (
        "--eval-every N (default 1000; 0 = never) logs FID/KID of the EMA generator against the training images "
        "to RUN/log.jsonl, by default on features of the offline Lite0 backbone: labelled fid_lite0/kid_lite0, "
        "comparable between runs, not with Inception FID in papers; --eval-extractor inception gives the papers' "
        "FID (pytorch-fid's weights, downloaded once or given as a file). Several processes: torchrun "
        "--nproc-per-node N -m brushwork gan train ... (the batch is split among them)."
    )

    p = add_parser(gan_sub, "evaluate", "FID/KID of a run's EMA generator against its training images")
    p.add_argument("run", help="run folder from 'brushwork gan train'")
    p.add_argument("--data", help="the training data, if it has moved (default: where the run recorded it)")
    add_settings(p, api.GanEvaluation, choices={"extractor": tuple(api.EXTRACTORS)})
    p.add_argument("--extractor-weights", default=None, help="a local weights file for those features")
    p.add_argument("--classifier", help="an ONNX classifier of the run's classes (scores in the run's class order): "
                   "reports the share of samples it assigns to the class asked for")  # fmt: skip
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")

    for verb, text, default, seeds in (
        ("sample", "images by seed, class and truncation", "RUN-samples/ here (RUN-samples.png with --grid)", "0-63"),
        ("interpolate", "a latent walk as GIF or MP4", "RUN-walk.gif here", "0-3"),
    ):
        p = add_parser(gan_sub, verb, text)
        p.add_argument("run", help="run folder from 'brushwork gan train'")
        add_settings(p, api.SETTINGS["gan-" + verb], defaults={"seeds": seeds})
        add_output_options(p, "output folder, or an image with --grid" if verb == "sample" else "WALK.gif or .mp4",
                           default)  # fmt: skip
        p.add_argument("-q", "--quiet", action="store_true", help="print nothing but the output's name")
        add_protection_options(p)
        if verb == "sample":
            p.add_argument("--grid", action="store_true", help="one image grid instead of a folder of PNGs")
            p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
        add_params_from(p, Replay(p, api.ENGINES["gan_" + verb], lambda a: {"model": _checkpoint(a.run)}))
    return {"gan": _run_gan}


def _checkpoint(run: str) -> str:
    return str(Path(run) / "checkpoint.safetensors")


def _run_gan(args: argparse.Namespace) -> int:
    handlers = {"train": _run_train, "evaluate": _run_evaluate, "sample": _run_sample, "interpolate": _run_walk}
    return handlers[args.gan_verb](args)


def _run_walk(args: argparse.Namespace) -> int:
    out = args.output or f"{Path(args.run).resolve().name}-walk.gif"
    settings = settings_from(api.SETTINGS["gan-interpolate"], args)
    print(api.gan_interpolate(args.run, out, force=args.force, protection=protection_from_args(args),
                              **settings.values()))  # fmt: skip
    return 0


def _run_sample(args: argparse.Namespace) -> int:
    name = Path(args.run).resolve().name
    out = Path(args.output or (f"{name}-samples.png" if args.grid else f"{name}-samples"))
    options = {**settings_from(api.SETTINGS["gan-sample"], args).values(), "device": args.device}
    if args.grid:
        api.check_output_path(out, args.force, tuple(api.IMAGE_SUFFIXES))
        api.save(api.gan_grid(args.run, **options), out, force=args.force, protection=protection_from_args(args))
        print(out)
        return 0
    if out.exists() and not out.is_dir():
        raise BrushworkError(f"{out}: is a file; samples go into a folder (or use --grid for one image)")
    protection = protection_from_args(args)
    with api.all_or_nothing_folder(out, args.force) as folder_out:  # checks the folder first; all the images or none
        images = api.gan_sample(args.run, **options)
        per_class = args.class_name is None and len(api.gan_classes(args.run)) > 0

        def named():
            for image in images:
                params = api.record_of(image).parameters
                folder = folder_out / params["class_name"] if per_class else folder_out
                folder.mkdir(parents=True, exist_ok=True)
                yield image, folder / f"seed{params['seeds'][0]:05d}.png"

        for _ in api.save_all(named(), force=True, protection=protection):  # protected a batch at a time
            pass
    print(out)
    return 0


def _run_train(args: argparse.Namespace) -> int:
    def on_start(plan) -> None:
        if plan.skipped:
            print(f"brushwork: skipped {len(plan.skipped)} unreadable image(s), e.g. {plan.skipped[0]}",
                  file=sys.stderr)  # fmt: skip
        if not args.quiet:  # every option, printed at start
            print(json.dumps({"config": plan.config, "images": plan.images, "classes": plan.classes}),
                  file=sys.stderr)  # fmt: skip
        shown["batch_size"] = plan.config["batch_size"]

    shown: dict = {}

    def run(on_step):
        return api.gan_train(args.data, args.output, resume=args.resume, force=args.force, device=args.device,
                             on_step=on_step, on_start=on_start, **settings_from(api.GanData, args).values(),
                             **settings_values(api.GanConfig, args, given_only=True))  # fmt: skip

    # images/s in the bar: the batch is known once the run's settings are read.
    return train_with_progress(run, Path(args.output), args.quiet, lambda: shown.get("batch_size"))


def _run_evaluate(args: argparse.Namespace) -> int:
    settings = settings_from(api.GanEvaluation, args)
    figures = api.gan_evaluate(args.run, data=args.data, extractor_weights=args.extractor_weights,
                               classifier=args.classifier, device=args.device, **settings.values())  # fmt: skip
    print(json.dumps(figures))
    return 0
