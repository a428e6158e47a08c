"""brushwork gan train | sample | interpolate."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from PIL import Image

from brushwork.cli.common import train_with_progress
from brushwork.errors import BrushworkError


def register(sub) -> dict:
    """Add this capability's verbs to ``sub``; return {verb: handler}."""
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
    p.add_argument(
        "--conditioning",
        choices=("projection", "concat", "acgan"),
        default=None,
        help="how G and D see the class (default projection)",
    )
    p.add_argument(
        "--precision",
        choices=("auto", "fp32", "bf16"),
        default=None,
        help="auto: bf16 autocast on CUDA, fp32 elsewhere",
    )
    p.add_argument("--augment", action="store_true", help="DiffAugment, for small datasets")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--force", action="store_true", help="start the run folder over")
    p.add_argument("--device", default="auto")
    p.add_argument("-q", "--quiet", action="store_true")
    g = p.add_argument_group("training")
    for name, kind in (("steps", int), ("batch_size", int), ("latent", int), ("g_width", int), ("d_width", int),
                       ("lr_g", float), ("lr_d", float), ("ema", float), ("seed", int), ("checkpoint_every", int),
                       ("sample_every", int), ("eval_every", int), ("eval_samples", int)):  # fmt: skip
        g.add_argument("--" + name.replace("_", "-"), type=kind, default=None)
    _add_extractor_options(g, "--eval-extractor", "--eval-extractor-weights")
    p.epilog = (
        "--eval-every N (default 1000; 0 = never) logs FID/KID of the EMA generator against the training images "
        "to RUN/log.jsonl, by default on features of the offline Lite0 backbone: labelled fid_lite0/kid_lite0, "
        "comparable between runs, not with Inception FID in papers; --eval-extractor inception gives the papers' "
        "FID (pytorch-fid's weights, downloaded once or given as a file). Several processes: torchrun "
        "--nproc-per-node N -m brushwork gan train ... (the batch is split among them)."
    )

    p = gan_sub.add_parser("evaluate", help="FID/KID of a run's EMA generator against its training images")
    p.add_argument("run", help="run folder from 'brushwork gan train'")
    p.add_argument("--data", help="the training data, if it has moved (default: where the run recorded it)")
    p.add_argument("--samples", type=int, default=1000, help="generated and real images compared (as in training)")
    _add_extractor_options(p, "--extractor", "--extractor-weights")
    p.add_argument("--device", default="auto")

    for verb, text in (
        ("sample", "images by seed, class and truncation"),
        ("interpolate", "a latent walk as GIF or MP4"),
    ):
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
    return {"gan": _run_gan}


def _add_extractor_options(group, name: str, weights: str) -> None:
    from brushwork.judge.distribution import EXTRACTORS

    group.add_argument(name, choices=tuple(EXTRACTORS), default=None,
                       help="FID/KID features: lite0 (offline, default) or inception (as in papers)")  # fmt: skip
    group.add_argument(weights, default=None, help="a local weights file for those features")


def _run_gan(args: argparse.Namespace) -> int:
    from brushwork.gan import sample as gs

    if args.gan_verb == "train":
        return _run_gan_train(args)
    if args.gan_verb == "evaluate":
        return _run_gan_evaluate(args)
    g, cfg, classes = gs.load_run(args.run)
    label = gs.class_index(args.class_name, classes)
    seeds = gs.parse_seeds(args.seeds)
    params = dict(seeds=args.seeds, class_name=args.class_name, truncation=args.truncation)
    out = Path(args.output)
    from brushwork.files import atomic_write, check_output_path

    if args.gan_verb == "interpolate":
        check_output_path(out, args.force, (".gif", ".mp4"))
        if not 1 <= args.frames <= 1000:
            raise BrushworkError("frames must be 1..1000")
        frames = gs.interpolate(g, cfg, seeds, label, args.frames, args.truncation)
        # GAN images are small: shown at 256 px or more (nearest, so pixels stay pixels).
        scale = max(1, 256 // cfg.resolution)
        frames = [f.resize((f.width * scale, f.height * scale), Image.Resampling.NEAREST) for f in frames]
        from brushwork.records import describe_input, new_record

        model = {"model": describe_input(Path(args.run) / "checkpoint.safetensors")}
        comment = new_record("gan-interpolate", {**params, "frames": args.frames}, models=model).finish().to_json()
        if out.suffix.lower() == ".mp4":
            from brushwork.style.video import write_frames

            write_frames(frames, out, fps=25, comment=comment)
        else:
            atomic_write(out, lambda tmp: frames[0].save(tmp, format="GIF", save_all=True, append_images=frames[1:],
                                                         duration=40, loop=0, comment=comment))  # fmt: skip
        print(out)
        return 0
    import torch

    from brushwork.api import save
    from brushwork.gan.train import image_grid
    from brushwork.records import describe_input, new_record

    def record(seed_list, class_name) -> object:
        return new_record("gan-sample", {"seeds": seed_list, "class_name": class_name, "truncation": args.truncation},
                          models={"model": describe_input(Path(args.run) / "checkpoint.safetensors")},
                          seed=seed_list[0] if len(seed_list) == 1 else None)  # fmt: skip

    labels = [label] if label is not None or not cfg.classes else list(range(len(classes)))
    if args.grid:
        check_output_path(out, args.force)
        rows = [gs.generate(g, cfg, seeds, lab, args.truncation) for lab in labels]
        per_row = len(seeds) if len(labels) > 1 else min(8, len(seeds))
        grid = image_grid(torch.cat(rows), per_row)
        save(grid, out, record(seeds, args.class_name), force=args.force)
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
            save(img, folder / f"seed{seed:05d}.png", record([seed], classes[lab] if cfg.classes else None), force=True)
    print(out)
    return 0


def _run_gan_train(args: argparse.Namespace) -> int:
    import shutil
    from dataclasses import asdict

    from brushwork.checkpoints import load_meta
    from brushwork.device import pick_device
    from brushwork.distributed import launched_rank
    from brushwork.gan.data import load_dataset
    from brushwork.gan.train import CHECKPOINT, SCHEDULE, GanConfig, train_gan

    out = Path(args.out)
    if not out.parent.is_dir():
        raise BrushworkError(f"{out.parent}: folder does not exist")
    if args.resume and not (out / CHECKPOINT).exists():
        raise BrushworkError(f"{out}: nothing to resume")
    if out.exists() and any(out.iterdir()) and not (args.resume or args.force):
        raise BrushworkError(f"{out}: run folder is not empty; use --resume to continue it or --force to start over")
    if args.force and not args.resume and out.exists() and launched_rank() == 0:
        shutil.rmtree(out)
    data = load_dataset(args.data, args.conditional, args.resolution, args.channels)
    if data.skipped:
        print(f"brushwork: skipped {len(data.skipped)} unreadable image(s), e.g. {data.skipped[0]}", file=sys.stderr)
    given = {k: v for k, v in vars(args).items() if k in asdict(GanConfig()) and v is not None}
    config = GanConfig(**{**given, "resolution": data.resolution, "channels": data.channels,
                          "classes": len(data.class_names) if args.conditional else 0})  # fmt: skip
    if args.conditional and not data.class_names:
        raise BrushworkError("--conditional needs class labels (sub-folders or Fashion-MNIST)")
    schedule = {k: v for k, v in given.items() if k in SCHEDULE}
    shown = asdict(config)
    if args.resume:  # the run's own settings, with what may change on resume
        shown = {**load_meta(out / CHECKPOINT)["config"], **schedule}
        shown["steps"] = max(shown["steps"], given.get("steps", 0))
    quiet = args.quiet or launched_rank() != 0  # one process speaks under torchrun
    if not quiet:
        print(
            json.dumps({"config": shown, "images": len(data.images), "classes": data.class_names}),
            file=sys.stderr,
        )  # every option, printed at start
    device = pick_device(args.device)

    def run(on_step) -> None:
        train_gan(data, out, config, device, args.resume, given.get("steps"), on_step, schedule)

    return train_with_progress(run, out, quiet, shown["batch_size"])


def _run_gan_evaluate(args: argparse.Namespace) -> int:
    from brushwork.device import pick_device
    from brushwork.gan.data import load_dataset
    from brushwork.gan.evaluate import evaluate_run

    if not 2 <= args.samples <= 100_000:
        raise BrushworkError("samples must be 2..100000")
    options = Path(args.run) / "options.json"
    if not options.exists():
        raise BrushworkError(f"{args.run}: not a brushwork GAN run (no options.json)")
    recorded = json.loads(options.read_text())
    cfg = recorded["config"]
    source = args.data or recorded["data"]["source"]
    data = load_dataset(source, cfg["classes"] > 0, cfg["resolution"], cfg["channels"])
    figures = evaluate_run(args.run, data, args.samples, pick_device(args.device), args.extractor,
                           args.extractor_weights)  # fmt: skip
    print(json.dumps(figures))
    return 0
