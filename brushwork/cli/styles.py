"""brushwork styles rank: a style library ranked by words (CLIP); the same choice on adain/fast apply."""

from __future__ import annotations

import argparse
import sys

from brushwork import api
from brushwork.cli.common import add_parser, add_settings, add_verb_group
from brushwork.errors import BrushworkError


def add_clip_options(g) -> None:
    """Which CLIP ranks the library: the same options (names, defaults, help) as ``stylize --style-text``."""
    add_settings(g, api.StyleConfig, only=("clip_model", "clip_pretrained"))
    g.add_argument("--clip-weights", help="a CLIP weights file (.safetensors or state dict) instead of the cache")
    g.add_argument("--no-embedding-cache", dest="embedding_cache", action="store_false",
                   help="embed every file again, not reading their cached embeddings (by SHA-256)")  # fmt: skip


def add_style_text_options(p, what: str) -> None:
    """``--style-text`` with ``--style-library`` on ``adain apply`` (style images) and ``fast apply`` (models)."""
    g = p.add_argument_group("style by words (CLIP)")
    g.add_argument("--style-text", help=f'pick the {what} from --style-library by words, e.g. "stormy sea at night"')
    g.add_argument("--style-library", "--style-dir", dest="style_library", metavar="DIR",
                   help=f"a folder of {what}s (searched recursively), ranked by CLIP similarity")  # fmt: skip
    add_clip_options(g)


def pick_by_text(args: argparse.Namespace, kind: str) -> api.StylePick | None:
    """With --style-text: the library ranked, the top three shown on stderr; None without it."""
    if not args.style_text and not args.style_library:
        return None
    if not args.style_text or not args.style_library:
        raise BrushworkError("--style-text picks from a folder: give both --style-text and --style-library DIR")
    pick = api.rank_styles(args.style_text, args.style_library, kind=kind, clip_model=args.clip_model,
                           clip_pretrained=args.clip_pretrained, clip_weights=args.clip_weights,
                           cache=args.embedding_cache, device=getattr(args, "device", "auto"))  # fmt: skip
    if not args.quiet:
        _show(pick, 3, sys.stderr)
    return pick


def _show(pick: api.StylePick, top: int | None, out) -> None:
    for match in pick.matches[:top]:
        shown = "" if match.shown_by == "image" else f"  (by its {match.shown_by})"
        print(f"{match.score:7.4f}  {match.path}{shown}", file=out)
    for note in pick.notes:
        print(f"brushwork: note: {note}", file=sys.stderr)


def register(sub) -> dict:
    """Add this capability's verbs to ``sub``; return {verb: handler}."""
    _, styles_sub = add_verb_group(sub, "styles", "a style library: rank it by words (CLIP)", "styles_verb")
    p = add_parser(styles_sub, "rank", "rank a folder of style images (or fast models) by CLIP similarity to a text")
    p.add_argument("text", help='what the style should look like, e.g. "a watercolour with warm, loose strokes"')
    p.add_argument("library", nargs="+", help="folders (searched recursively) and files of the library")
    p.add_argument("--models", action="store_true", help="rank the library's fast models instead of its images")
    p.add_argument("--top", type=int, default=10, help="how many to print (0: all)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    add_clip_options(p)
    return {"styles": _run_styles}


def _run_styles(args: argparse.Namespace) -> int:
    if args.top < 0:
        raise BrushworkError(f"--top must be 0 (all) or more, not {args.top}")
    library = args.library[0] if len(args.library) == 1 else args.library
    pick = api.rank_styles(args.text, library, kind="fast" if args.models else "images",
                           clip_model=args.clip_model, clip_pretrained=args.clip_pretrained,
                           clip_weights=args.clip_weights, cache=args.embedding_cache, device=args.device)  # fmt: skip
    _show(pick, args.top or None, sys.stdout)
    return 0
