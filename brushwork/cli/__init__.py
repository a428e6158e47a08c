"""``brushwork <verb>``: parse, call the library, print. Each capability's verbs live in their own module."""

from __future__ import annotations

import argparse
import importlib
import signal
import sys

from brushwork._version import __version__
from brushwork.cli.common import EXAMPLES, missing_sub_verb, parse_with_stored_params
from brushwork.errors import BrushworkError

__all__ = ["EXAMPLES", "VERBS", "build_parser", "main"]
MODULES = ("stylize", "info", "fast", "adain", "styles", "video", "gan", "judge", "protect", "studio")

#: Each verb's module (``brushwork.cli.<module>``) and its line in ``brushwork --help``. Only the module
#: of the verb being run is imported: most import brushwork.api and torch (seconds) to build their
#: options, and ``--help``, ``info``, ``verify``, ``keys``, ``registry`` and ``judge`` need neither (#21).
#: The lines are the modules' own (tests/test_cli.py checks that they match).
VERBS = {
    "stylize": ("stylize", "paint photos in the style of one or more paintings (Gatys et al.)"),
    "demo": ("stylize", "stylise the bundled example photo offline (a quick first run)"),
    "info": ("info", "print the record of any brushwork output (image, GIF or MP4)"),
    "fast": ("fast", "per-style feed-forward networks: train once, stylise in milliseconds"),
    "adain": ("adain", "arbitrary style transfer (AdaIN): any style image at run time"),
    "styles": ("styles", "a style library: rank it by words (CLIP)"),
    "video": ("video", "stylise a video frame by frame, steadied, audio kept (fast or adain)"),
    "gan": ("gan", "train GANs on your own image folders; sample by seed and class"),
    "judge": ("judge", "score outputs, collect human ratings, learn each user's taste"),
    "protect": ("protect", "a watermarked, signed, registered copy; --encrypt keeps the original private"),
    "verify": ("protect", "is this an intact brushwork output, a modified one, or unknown?"),
    "unlock": ("protect", "restore the byte-identical original from a vault file"),
    "keys": ("protect", "signing keys for C2PA provenance"),
    "registry": ("protect", "the registry of protected works"),
    "serve": ("studio", "the web studio: queue, live previews, gallery, ratings (REST API at /docs)"),
    "worker": ("studio", "run the studio's jobs (beside 'serve', or on other machines with --queue)"),
}


def _verb_of(argv: list[str]) -> str | None:
    """The verb on a command line (the first word that is not an option), or None."""
    return next((word for word in argv if not word.startswith("-")), None)


def build_parser(verb: str | None = "*") -> tuple[argparse.ArgumentParser, dict]:
    """The parser and {verb: handler}: every verb's options ("*"), or only ``verb``'s module's (its
    siblings listed by name and help alone, so ``brushwork --help`` and a mistyped verb read the same)."""
    parser = argparse.ArgumentParser(prog="brushwork", description="brushwork: an AI art studio")
    parser.add_argument("--version", action="store_true", help="print the version")
    sub = parser.add_subparsers(dest="verb")
    handlers: dict = {}
    wanted = set(MODULES) if verb == "*" else {VERBS[verb][0]} if verb in VERBS else set()
    for name in MODULES:
        if name in wanted:
            handlers.update(importlib.import_module(f"brushwork.cli.{name}").register(sub))
            continue
        for listed, (module, text) in VERBS.items():
            if module == name:
                sub.add_parser(listed, help=text)
    return parser, handlers


def _memory_error(exc: BaseException) -> bool:
    text = str(exc).lower()
    return isinstance(exc, MemoryError) or "out of memory" in text or "can't allocate memory" in text


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    # A second Ctrl-C during the save would leave nothing; make the first one a clean exception.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        # Inside the try: the verb's module may load torch (seconds), and Ctrl-C then is an interrupt too.
        parser, handlers = build_parser(_verb_of(argv))
        args = parse_with_stored_params(parser, argv)
        if args.version:
            print(__version__)
            return 0
        if args.verb not in handlers:
            parser.print_help()
            return 2
        if missing_sub_verb(args):
            return 2
        return handlers[args.verb](args)
    except BrushworkError as exc:
        print(f"brushwork: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:  # outputs are written whole or not at all: nothing half-written remains
        print("\nbrushwork: interrupted", file=sys.stderr)
        return 130
    except OSError as exc:  # a file system refusal the library did not word (read-only, full disk): one line
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"brushwork: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 2
    except (RuntimeError, MemoryError) as exc:
        if _memory_error(exc):
            print("brushwork: error: out of memory; try a smaller --image-size or --scales", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
