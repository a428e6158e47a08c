"""What the command modules share: one vocabulary of options, flags from config dataclasses, progress
bars, training runs, and repeating a run from an output's record (``--params-from``).

Option names are the same on every verb and are the Python API's keyword names with dashes
(``--style-blend-weights`` is ``style_blend_weights``): a record's parameters then map back onto
the command line one to one. Choice lists come from ``brushwork.api``, never restated here.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from brushwork.errors import BrushworkError
from brushwork.settings import Control, controls

#: The bundled example photos, styles and models.
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"

# ``brushwork.api`` (and with it torch) is imported inside the functions that need it: the verbs that
# never touch a network (info, verify, keys, registry, judge rate) start in milliseconds (#21).


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


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from exc
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def name_list(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def add_settings(group, settings_cls, *, only: tuple[str, ...] | None = None, skip: tuple[str, ...] = (),
                 keep_defaults: bool = True, defaults: dict | None = None,
                 choices: dict[str, tuple] | None = None) -> None:  # fmt: skip
    """A flag for each control of a settings class (``brushwork.settings.controls``): its name, help, default,
    choices and older spellings come from the settings; the values are read and checked as the studio reads
    and checks them. ``defaults`` are this face's own (``--seeds 0-63``), ``choices`` lists known only at run
    time. Without ``keep_defaults`` an unset flag is None (a resumed run keeps its own setting) and the help
    names the settings' default."""
    for c in controls(settings_cls):
        if c.name in skip or (only is not None and c.name not in only):
            continue
        default = (defaults or {}).get(c.name, c.default)
        options: dict = {"dest": c.name, "help": c.help}
        flag = c.flag
        if c.kind == "bool":
            flag = "--no-" + c.flag[2:] if c.default else c.flag
            options["action"] = "store_false" if c.default else "store_true"
            options["default"] = c.default if keep_defaults else None
        else:
            listed = c.kind == "names" and c.choices  # several words from a list: --audio-reactive strength scale
            options["type"] = str if listed else _item_reader(c) if c.parts else _reader(c)
            options["nargs"] = "+" if listed else len(c.parts) if c.parts else None
            if c.parts:  # a fixed list, a word each: --classifier-range -1 1
                options["metavar"] = tuple(part.upper() for part in c.parts)
            options["default"] = default if keep_defaults else None
            if default is not None and (c.parts or not keep_defaults):
                options["help"] = f"{c.help} (default: {_shown(default, ' ' if c.parts else ',')})"
            if c.name in (choices or {}):
                options["choices"] = choices[c.name]
            elif c.choices:
                # Shown as argparse shows choices, refused by the settings' check: the studio's words.
                options["metavar"] = "{" + ",".join(map(str, c.choices)) + "}"
        action = group.add_argument(flag, **options)
        action.allowed = c.choices or options.get("choices")  # what --params-from may set it to
        for alias in c.aliases:
            group.add_argument(alias, dest=c.name, type=options.get("type"), default=argparse.SUPPRESS,
                               help=argparse.SUPPRESS)  # fmt: skip


def _reader(control: Control) -> Callable[[str], object]:
    """The control's own reading of typed text, as argparse's type. Its refusal, a BrushworkError, passes
    through argparse (which catches only ValueError, TypeError and its own) to ``main``: the same one line
    and exit 2 as the studio's words for the same value."""

    def read(text: str) -> object:
        return control.from_text(text)

    read.__name__ = control.kind
    return read


def _item_reader(control: Control) -> Callable[[str], object]:
    """One word of a list typed as separate words (``parts``): read as the list's items are."""
    kind = {"floats": "float", "ints": "int"}.get(control.kind, "str")
    return _reader(replace(control, kind=kind, parts=(), parse=None, optional=False, required=False))


def _shown(value, between: str = ",") -> str:
    return between.join(map(str, value)) if isinstance(value, list) else str(value)


def settings_values(settings_cls, args: argparse.Namespace, *, given_only: bool = False) -> dict:
    """The settings on the command line, by keyword (with ``given_only``: the flags set, for training runs
    where an unset flag keeps the run's own setting)."""
    values = {c.name: getattr(args, c.name) for c in controls(settings_cls) if hasattr(args, c.name)}
    return {k: v for k, v in values.items() if v is not None} if given_only else values


def settings_from(settings_cls, args: argparse.Namespace, n_styles: int | None = None):
    """The engine's settings from the command line, checked by their own ``validate``."""
    settings = settings_cls.from_values(settings_values(settings_cls, args))
    settings.validate(n_styles)
    return settings


# ---------------------------------------------------------------------------------------------
# The shared vocabulary


def add_output_options(p, what: str, default: str | None = None, *, required: bool = False,
                       aliases: tuple[str, ...] = (), force: str = "overwrite an existing output") -> None:  # fmt: skip
    p.add_argument("-o", "--output", *aliases, default=None, required=required,
                   help=f"{what} (default: {default})" if default else what)  # fmt: skip
    p.add_argument("--force", action="store_true", help=force)


def add_run_options(p, *, device: bool = True, max_pixels: bool = True) -> None:
    """``-q``, ``--device`` and ``--max-pixels``: on every verb that makes images."""
    from brushwork import api

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
    from brushwork import api

    return api.high_precision() if getattr(args, "bit_depth", 8) == 16 else contextlib.nullcontext()


def add_backbone_options(g, *, pooling: bool = True, device: bool = True, backbone: bool = True) -> None:
    """The backbone's file options; ``--backbone``/``--pooling`` too where they are not an engine's settings."""
    from brushwork import api

    if backbone:
        g.add_argument("--backbone", choices=api.BACKBONES, default="auto",
                       help="feature network: auto/vgg19 = VGG-19, torchvision's weights if cached, else the "
                       "original ones offline (vgg19-caffe-q8); lite0 = a fast preview")  # fmt: skip
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


def default_output(source: str | Path, by: str | Path, suffix: str = ".png", folder: str | Path = ".",
                   engine: str = "") -> Path:  # fmt: skip
    """The one default name pattern: ``INPUT-STYLE-ENGINE.png`` (the style image's or the model's name) here.
    The engine's name keeps stylize, fast and adain outputs of one photo and style from overwriting each
    other; a model already named after its engine (``starry_night-fast``) does not get it twice."""
    by_stem = Path(by).stem
    tag = f"-{engine}" if engine and not by_stem.endswith(f"-{engine}") else ""
    return Path(folder) / f"{Path(source).stem}-{by_stem}{tag}{suffix}"


def outputs_for(sources: list[Path], by: str | Path, output: str | None, out_dir: str | None,
                suffix: str = ".png", engine: str = "") -> list[Path]:  # fmt: skip
    """Output paths for a batch: ``-o`` for one input, else the default name in ``--out-dir`` (created with
    its parents). Two inputs that would write the same file are refused (nothing is overwritten by its sibling)."""
    if output and len(sources) > 1:
        raise BrushworkError("-o names one output; for several images use --out-dir")
    if output:
        return [Path(output)]
    folder = Path(out_dir or ".")
    if folder.exists() and not folder.is_dir():
        raise BrushworkError(f"{folder}: not a folder")
    folder.mkdir(parents=True, exist_ok=True)
    outs = [default_output(s, by, suffix, folder, engine) for s in sources]
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
                              on_step=on_step, **backbone_options(args),
                              **settings_values(config_cls, args, given_only=True)),
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
    from brushwork import api

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
        if isinstance(value, list) and action.nargs is None:
            value = ",".join(map(str, value))  # a list as typed (3,7): argparse reads a text default with its type
        given = value if isinstance(value, list) and action.nargs in ("+", "*") else [value]
        allowed = getattr(action, "allowed", None) or action.choices
        if allowed and any(v not in allowed for v in given):
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
    from brushwork import api

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
    from brushwork import api

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


def add_training_options(p, settings_cls) -> None:
    """What a style trainer's verb takes besides its data: the model file, resume, and the flags of its
    ``TrainSettings`` (the studio's form for the same trainer): the config's, then the backbone's."""
    from brushwork import api

    add_output_options(p, "MODEL.safetensors (its settings are inside it, and in MODEL.json beside it)",
                       required=True, force="train a new model over an existing one")  # fmt: skip
    p.add_argument("--resume", action="store_true", help="continue training OUTPUT where it stopped")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    g = p.add_argument_group("training")
    network = ("backbone", "pooling")
    add_settings(g, settings_cls, keep_defaults=False, skip=network)  # unset: a resumed run keeps its own
    add_settings(g, settings_cls, only=network, choices={"backbone": api.BACKBONES, "pooling": api.POOLINGS})
    add_backbone_options(g, backbone=False, pooling=False)
