"""``brushwork <verb>``: parse, call the library, print. Each capability's verbs live in their own module."""

from __future__ import annotations

import argparse
import signal
import sys

from brushwork.cli import adain, fast, gan, judge, protect, studio, styles, stylize, video
from brushwork.cli.common import missing_sub_verb, parse_with_stored_params
from brushwork.cli.stylize import EXAMPLES
from brushwork.errors import BrushworkError

__all__ = ["EXAMPLES", "build_parser", "main"]
MODULES = (stylize, fast, adain, styles, video, gan, judge, protect, studio)


def build_parser() -> tuple[argparse.ArgumentParser, dict]:
    parser = argparse.ArgumentParser(prog="brushwork", description="brushwork: an AI art studio")
    parser.add_argument("--version", action="store_true", help="print the version")
    sub = parser.add_subparsers(dest="verb")
    handlers: dict = {}
    for module in MODULES:
        handlers.update(module.register(sub))
    return parser, handlers


def _memory_error(exc: BaseException) -> bool:
    text = str(exc).lower()
    return isinstance(exc, MemoryError) or "out of memory" in text or "can't allocate memory" in text


def main(argv: list[str] | None = None) -> int:
    parser, handlers = build_parser()
    argv = sys.argv[1:] if argv is None else argv
    # A second Ctrl-C during the save would leave nothing; make the first one a clean exception.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        args = parse_with_stored_params(parser, argv)
        if args.version:
            from brushwork._version import __version__

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
