"""What the command modules share: one vocabulary of options, flags from config dataclasses, progress
bars, training runs, and repeating a run from an output's record (``--params-from``).

Option names are the same on every verb and are the Python API's keyword names with dashes
(``--style-blend-weights`` is ``style_blend_weights``): a record's parameters then map back onto
the command line one to one. Choice lists come from ``brushwork.api``, never restated here.
"""

from __future__ import annotations

import argparse
import sys
import types
import typing
from collections.abc import Callable
from dataclasses import MISSING, dataclass, fields
from pathlib import Path

from brushwork import api
from brushwork.errors import BrushworkError


class HelpFormatter(argparse.HelpFormatter):
    """Every option's help ends with its default, when it has one worth showing."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        unset = action.default is None or action.default is False or action.default is argparse.SUPPRESS
        if "default" in text.lower() or not action.option_strings or unset:
            return text
        if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction, argparse._HelpAction)):
            return text
        return f"{text} (default: %(default)s)"


def add_parser(sub, name: str, help: str, **kwargs) -> argparse.ArgumentParser:
    description = help.replace("%%", "%")  # help is %-formatted by argparse, a description is not
    return sub.add_parser(name, help=help, description=description, formatter_class=HelpFormatter, **kwargs)


def add_verb_group(sub, name: str, help: str, dest: str) -> tuple[argparse.ArgumentParser, object]:
    """A verb with sub-verbs (``fast train|apply|…``); the verb alone prints its help and exits 2."""
    parser = add_parser(sub, name, help)
    parser.set_defaults(group_parser=parser, group_dest=dest)
    return parser, parser.add_subparsers(dest=dest)


def missing_sub_verb(args: argparse.Namespace) -> bool:
    """``brushwork fast`` alone: print that verb's help (its sub-verbs) on stderr; the caller exits 2."""
    dest = getattr(args, "group_dest", None)
    if dest is None or getattr(args, dest, None) is not None:
        return False
    args.group_parser.print_help(sys.stderr)
    return True


# ---------------------------------------------------------------------------------------------
# Value types


def float_list(text: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from exc


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from exc
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def int_list(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected comma-separated whole numbers, got {text!r}") from exc


def name_list(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


_LIST_TYPES = {str: name_list, int: int_list, float: float_list}


def _flag_type(annotation) -> tuple[Callable | None, bool]:
    """(argparse type, is a bool flag) for a dataclass field's type (``int``, ``list[str] | None``, …)."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        annotation = args[0]
        args = list(typing.get_args(annotation))
    if typing.get_origin(annotation) is list:
        return _LIST_TYPES[args[0]], False
    if annotation is bool:
        return None, True
    return annotation, False


def add_config_options(
    group,
    config_cls,
    *,
    only: tuple[str, ...] | None = None,
    skip: tuple[str, ...] = (),
    choices: dict[str, tuple] | None = None,
    keep_defaults: bool = False,
) -> None:
    """A ``--field-name`` flag for each field of a config dataclass.

    Help and choices come from the field's metadata (``brushwork.settings.setting``); ``choices``
    here is for lists only known at run time (a registry of extractors). With ``keep_defaults`` the
    flag's default is the field's; otherwise it is None (an unset flag keeps the config's default,
    and a resumed run its own setting) and the help names the config's default.
    """
    choices = choices or {}
    hints = typing.get_type_hints(config_cls)  # the fields' types, also where annotations are strings
    for f in fields(config_cls):
        if f.name in skip or (only is not None and f.name not in only):
            continue
        kind, is_bool = _flag_type(hints[f.name])
        default = f.default if f.default is not MISSING else f.default_factory()  # type: ignore[misc]
        text = f.metadata.get("help") or f.name.replace("_", " ")
        options: dict = {"help": text}
        if is_bool:
            options["action"] = "store_true"
            options["default"] = False if keep_defaults else None
        else:
            options["type"] = kind
            options["default"] = default if keep_defaults else None
            if not keep_defaults and default is not None:
                options["help"] = f"{text} (default: {_shown(default)})"
            if f.metadata.get("choices") or f.name in choices:
                options["choices"] = f.metadata.get("choices") or choices[f.name]
        group.add_argument("--" + f.name.replace("_", "-"), **options)


def _shown(value) -> str:
    return ",".join(map(str, value)) if isinstance(value, list) else str(value)


def config_values(config_cls, args: argparse.Namespace) -> dict:
    """The config fields given on the command line (unset flags are None and left out)."""
    return {f.name: getattr(args, f.name) for f in fields(config_cls) if getattr(args, f.name, None) is not None}


# ---------------------------------------------------------------------------------------------
# The shared vocabulary


def add_output_options(p, what: str, default: str | None = None, *, required: bool = False,
                       aliases: tuple[str, ...] = (), force: str = "overwrite an existing output") -> None:  # fmt: skip
    p.add_argument("-o", "--output", *aliases, default=None, required=required,
                   help=f"{what} (default: {default})" if default else what)  # fmt: skip
    p.add_argument("--force", action="store_true", help=force)


def add_run_options(p, *, device: bool = True, max_pixels: bool = True) -> None:
    """``-q``, ``--device`` and ``--max-pixels``: on every verb that makes images."""
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    if device:
        p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    if max_pixels:
        # Refused when < 1 by every verb alike, including those whose inputs are not images.
        p.add_argument("--max-pixels", type=positive_int, default=api.DEFAULT_MAX_PIXELS,
                       help="refuse larger input images")  # fmt: skip


def add_bit_depth(p) -> None:
    p.add_argument("--bit-depth", type=int, choices=(8, 16), default=8,
                   help="16: a 16-bit-per-channel TIFF for print, from the engine's full-precision result")  # fmt: skip


def output_suffix(args: argparse.Namespace) -> str:
    return ".tif" if getattr(args, "bit_depth", 8) == 16 else ".png"


def precision(args: argparse.Namespace):
    """Keep the engine's result at 16 bits while it is made, when a 16-bit file is asked for."""
    import contextlib

    return api.high_precision() if getattr(args, "bit_depth", 8) == 16 else contextlib.nullcontext()


def add_strength(p, what: str = "the photo") -> None:
    p.add_argument("--strength", type=float, default=1.0, help=f"0 = {what}, 1 = full style")
    p.add_argument("--alpha", dest="strength", type=float, default=argparse.SUPPRESS, help=argparse.SUPPRESS)


def add_style_blend_weights(p) -> None:
    p.add_argument("--style-blend-weights", type=float_list, default=None,
                   help="how much of each style, e.g. 3,7 for two styles (normalised)")  # fmt: skip
    p.add_argument("--style-weights", dest="style_blend_weights", type=float_list, default=argparse.SUPPRESS,
                   help=argparse.SUPPRESS)  # fmt: skip


def add_preserve_colors(p, default: str = "none") -> None:
    p.add_argument("--preserve-colors", choices=api.PRESERVE_COLORS, default=default,
                   help="keep the photo's colours: luminance transfer, or colour statistics matched")  # fmt: skip


def add_backbone_options(g, *, pooling: bool = True, device: bool = True) -> None:
    g.add_argument("--backbone", choices=api.BACKBONES, default="auto",
                   help="feature network: auto/vgg19 = VGG-19, torchvision's weights if cached, else the original "
                   "ones offline (vgg19-caffe-q8); lite0 = a fast preview")  # fmt: skip
    g.add_argument("--weights", help="backbone weights file (.pth or .safetensors)")
    g.add_argument("--weights-layout", choices=api.LAYOUTS, default="torchvision",
                   help="caffe: BGR, 0-255, mean-subtracted")  # fmt: skip
    if pooling:
        g.add_argument("--pooling", choices=api.POOLINGS, default="max", help="VGG's pooling layers")
    if device:
        g.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")


def backbone_options(args: argparse.Namespace) -> dict:
    keys = ("backbone", "weights", "weights_layout", "pooling")
    return {k: getattr(args, k) for k in keys if hasattr(args, k)}


def default_output(source: str | Path, by: str | Path, suffix: str = ".png", folder: str | Path = ".") -> Path:
    """The one default name pattern: ``INPUT-STYLE.png`` (the style image's or the model's name) here."""
    return Path(folder) / f"{Path(source).stem}-{Path(by).stem}{suffix}"


def outputs_for(sources: list[Path], by: str | Path, output: str | None, out_dir: str | None,
                suffix: str = ".png") -> list[Path]:  # fmt: skip
    """Output paths for a batch: ``-o`` for one input, else the default name in ``--out-dir``.
    Two inputs that would write the same file are refused (nothing is overwritten by its sibling)."""
    if output and len(sources) > 1:
        raise BrushworkError("-o names one output; for several images use --out-dir")
    if output:
        return [Path(output)]
    folder = Path(out_dir or ".")
    if not folder.is_dir():
        raise BrushworkError(f"{folder}: output folder does not exist")
    outs = [default_output(s, by, suffix, folder) for s in sources]
    seen: dict[Path, Path] = {}
    for src, out in zip(sources, outs, strict=True):
        if out in seen:
            raise BrushworkError(f"{seen[out]} and {src} would both be written to {out}; rename one, or run them "
                                 "separately with --out-dir")  # fmt: skip
        seen[out] = src
    return outs


# ---------------------------------------------------------------------------------------------
# Progress


def progress_bar(total: int | None, unit: str = "it"):
    from tqdm import tqdm

    # In a log file, redraw every 10 s rather than many times a second.
    interval = 0.1 if sys.stderr.isatty() else 10.0
    return tqdm(total=total, unit=unit, dynamic_ncols=True, file=sys.stderr, mininterval=interval)


def run_style_training(args: argparse.Namespace, train: Callable, config_cls, *data) -> int:
    """A style trainer's verb (``fast train``, ``adain train``): ``train(*data, output, …)`` from the API with
    the verb's shared options and the config's flags, under a progress bar."""
    return train_with_progress(
        lambda on_step: train(*data, args.output, resume=args.resume, force=args.force, device=args.device,
                              on_step=on_step, **backbone_options(args), **config_values(config_cls, args)),
        args.output, args.quiet,
    )  # fmt: skip


def train_with_progress(run, output: Path, quiet: bool,
                        images_per_step: Callable[[], int | None] | None = None) -> int:  # fmt: skip
    """Run ``run(on_step)`` with a progress bar (showing images/s when ``images_per_step()`` gives a
    number); Ctrl-C ends cleanly with the checkpoint saved."""
    bar = None

    def on_step(step) -> None:
        nonlocal bar
        if quiet:
            return
        if bar is None:
            bar = progress_bar(step.total, unit="step")
            bar.update(step.step - 1)
        bar.update(1)
        if step.step % 10 == 0:
            postfix = {k: f"{v:.3g}" for k, v in step.losses.items()}
            rate = bar.format_dict.get("rate")
            per_step = images_per_step() if images_per_step else None
            if per_step and rate:
                postfix["img/s"] = f"{rate * per_step:.0f}"
            bar.set_postfix(postfix, refresh=False)

    try:
        output = run(on_step) or output
    except KeyboardInterrupt:
        print(f"\nbrushwork: interrupted; progress saved in {output} (continue with --resume)", file=sys.stderr)
        return 130
    finally:
        if bar is not None:
            bar.close()
    print(output)
    return 0


# ---------------------------------------------------------------------------------------------
# --params-from: a record's parameters become the defaults; flags on the line win


@dataclass
class Replay:
    """How a verb repeats a run from an output's record."""

    parser: argparse.ArgumentParser
    engine: str  # the record's engine this verb repeats
    inputs: Callable[[argparse.Namespace], dict]  # role -> path(s) given now, to compare with the record's
    renames: dict[str, str] | None = None  # record key -> option dest, for older records


def add_params_from(p, replay: Replay) -> None:
    text = "take the settings stored in a brushwork output of this engine (flags given here win)"
    p.add_argument("--params-from", metavar="FILE", help=text)
    p.set_defaults(replay=replay)


def parse_with_stored_params(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """Parse twice: settings stored in ``--params-from`` become defaults, so flags on the line still win."""
    args = parser.parse_args(argv)
    replay: Replay | None = getattr(args, "replay", None)
    if replay is None or not getattr(args, "params_from", None):
        return args
    record = api.info(args.params_from)
    if record.engine != replay.engine:
        raise BrushworkError(f"{args.params_from}: was made by the {record.engine!r} engine; this verb repeats "
                             f"{replay.engine!r} outputs")  # fmt: skip
    replay.parser.set_defaults(**_stored_defaults(replay, record.parameters))
    args = parser.parse_args(argv)
    changed = api.changed_inputs(record, replay.inputs(args))
    if changed:
        print(f"brushwork: warning: {', '.join(changed)} differ from the inputs recorded in {args.params_from} "
              "(SHA-256)", file=sys.stderr)  # fmt: skip
    return args


def _stored_defaults(replay: Replay, stored: dict) -> dict:
    """The stored parameters this verb has options for, as their options' values."""
    actions = {a.dest: a for a in replay.parser._actions if a.option_strings}
    renames = {"style_blend": "style_blend_weights", "alpha": "strength", "style_weights": "style_blend_weights",
               **(replay.renames or {})}  # fmt: skip
    defaults = {}
    for key, value in stored.items():
        dest = renames.get(key, key)
        action = actions.get(dest)
        if action is None or dest in ("params_from", "output", "force"):
            continue
        if isinstance(value, list) and action.type not in (float_list, int_list, name_list) and action.nargs is None:
            value = ",".join(map(str, value))  # e.g. GAN seeds, stored as a list, given as text
        given = value if isinstance(value, list) and action.nargs in ("+", "*") else [value]
        if action.choices is not None and any(v not in action.choices for v in given):
            continue  # e.g. a backbone recorded as a weights file's own name
        defaults[dest] = value
    return defaults


def add_taste_options(p) -> None:
    g = p.add_argument_group("personal taste")
    g.add_argument("--taste-db", help="a ratings database ('brushwork judge rate'): choose the settings this user is "
                   "predicted to like most, from small previews scored by their taste model")  # fmt: skip
    g.add_argument("--user", help="whose taste (default: everyone's, pooled)")
    g.add_argument("--taste-trials", type=int, help="setting combinations to preview (default: all; 6 for stylize)")


def apply_taste(args: argparse.Namespace, engine: str, content, styles=(), model=None, **fixed) -> dict | None:
    """With --taste-db: set the settings the user's taste model picks on ``args``; the choice, for the record."""
    if not args.taste_db:
        return None
    choice = api.taste_settings(engine, content, styles, taste_db=args.taste_db, user=args.user, model=model,
                                trials=args.taste_trials, device=args.device, **fixed)  # fmt: skip
    for name, value in choice["settings"].items():
        setattr(args, name, value)
    if getattr(args, "original_colors", False) and "preserve_colors" in choice["settings"]:
        args.original_colors = False  # the taste's choice of colours wins over the shorthand
    shown = ", ".join(f"{k}={v}" for k, v in choice["settings"].items())
    print(f"brushwork: taste of {args.user or 'everyone'}: {shown}", file=sys.stderr)
    return {
        "db": str(args.taste_db),
        "user": args.user,
        "settings": choice["settings"],
        "previews": len(choice["ranked"]),
    }


def note_taste(image, taste: dict | None):
    """Keep the taste's choice in the output's record."""
    if taste is not None:
        api.record_of(image).extra["taste"] = taste
    return image


def add_protection_options(p: argparse.ArgumentParser) -> None:
    """The per-run protection switches every verb that writes an image offers."""
    g = p.add_argument_group("protection")
    g.add_argument("--no-watermark", action="store_true", help="do not mark the pixels (recorded in the record)")
    g.add_argument("--no-sign", action="store_true", help="no IPTC source type and no C2PA signature")
    g.add_argument("--no-register", action="store_true", help="keep this output out of the registry")
    g.add_argument("--cert", help="your own signing certificate chain (PEM, leaf first); with --key")
    g.add_argument("--key", help="the private key (PEM) of --cert")
    g.add_argument("--registry", help="registry file (default: in the user data folder)")


def protection_from_args(args: argparse.Namespace):
    """A :class:`brushwork.protect.Protection` from :func:`add_protection_options`' flags."""
    from brushwork.protect import Protection, Registry, find_keys

    keys = None if args.no_sign else find_keys(args.cert, args.key)
    return Protection(watermark=not args.no_watermark, provenance=not args.no_sign, register=not args.no_register,
                      keys=keys, registry=Registry(args.registry))  # fmt: skip


def add_training_options(p, config_cls) -> None:
    """What a style trainer's verb takes besides its data: the model file, resume, and the config's flags."""
    add_output_options(p, "MODEL.safetensors (its settings are inside it, and in MODEL.json beside it)",
                       required=True, force="train a new model over an existing one")  # fmt: skip
    p.add_argument("--resume", action="store_true", help="continue training OUTPUT where it stopped")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    g = p.add_argument_group("training")
    add_config_options(g, config_cls)
    add_backbone_options(g)
