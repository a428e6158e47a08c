"""brushwork judge score | rate | import | rank | taste: algorithmic scores, human ratings, personal taste."""

from __future__ import annotations

import argparse
import json

from brushwork.cli.common import add_parser, add_verb_group, progress_bar
from brushwork.errors import BrushworkError

SORT_KEYS = {"artfid": "artfid_lite0", "content": "content_distance", "style": "style_distance",
             "colour": "colour_distance"}  # fmt: skip


def register(sub) -> dict:
    """Add this capability's verbs to ``sub``; return {verb: handler}."""
    _, judge_sub = add_verb_group(sub, "judge", "score outputs, collect human ratings, learn each user's taste",
                                  "judge_verb")  # fmt: skip

    p = add_parser(judge_sub, "score", "score style-transfer outputs against their photo and painting")
    p.add_argument("outputs", nargs="+", help="output images or folders of them")
    p.add_argument("--content", required=True, help="the content photo (or the source video of stylised videos)")
    p.add_argument("--style", required=True, help="the style image")
    p.add_argument("--sort", choices=SORT_KEYS, default="artfid", help="best first by this figure (default artfid)")
    p.add_argument("--references", action="store_true", help="also score the photo and the painting themselves")
    p.add_argument("--size", type=int, default=256, help="long side the images are scored at (32-1024)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--csv", help="also write the table to this .csv")
    p.add_argument("--sheet", help="also write a contact sheet, best first, to this .png or .jpg")
    p.add_argument("--lpips-weights", help="the lpips package's vgg.pth: adds LPIPS (needs VGG-16 weights)")
    p.add_argument("--vgg16-weights", help="torchvision VGG-16 weights for LPIPS (default: the torch cache)")
    p.add_argument("--force", action="store_true", help="overwrite --csv/--sheet files")

    p = add_parser(judge_sub, "rate", "record that USER prefers one image over another")
    _add_db(p)
    p.add_argument("--user", required=True, help="who judged (a new name adds a rater)")
    p.add_argument("--winner", help="image file (or the hash of an image in the store)")
    p.add_argument("--loser", help="image file (or the hash of an image in the store)")
    p.add_argument("--tie", action="store_true", help="neither is better")
    p.add_argument("--interactive", action="store_true", help="rate the pairs taste --next-pair picks, in the terminal")
    p.add_argument("--add", nargs="+", metavar="IMG", help="with --interactive: put these images/folders in the store")
    p.add_argument("--rounds", type=int, default=20, help="with --interactive: pairs to ask at most")

    p = add_parser(judge_sub, "import", "import judgements from a CSV (user,winner,loser[,tie][,time])")
    _add_db(p)
    p.add_argument("csv", help="CSV file; image paths are relative to its folder")

    p = add_parser(judge_sub, "rank", "Bradley-Terry strengths with confidence intervals, and rater agreement")
    _add_db(p)
    p.add_argument("--user", help="one rater's ranking (default: everyone pooled)")
    p.add_argument("--bootstrap", type=int, default=0, help="intervals from N resamples (default: the fit's Hessian)")
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap resamples")
    p.add_argument("--json", action="store_true", help="print JSON")

    p = add_parser(judge_sub, "taste", "predict how much a user will like images, or pick the next pair")
    _add_db(p)
    p.add_argument("--user", help="whose taste (default: everyone's pooled taste, where a new user starts)")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--score", nargs="+", metavar="IMG", help="images to score for this user")
    what.add_argument("--next-pair", action="store_true", help="the most informative pair to rate next")
    p.add_argument("--json", action="store_true", help="print JSON")
    return {"judge": _run_judge}


def _add_db(p: argparse.ArgumentParser) -> None:
    p.add_argument("--db", required=True, help="ratings database (SQLite; created by rate/import)")


def _run_judge(args: argparse.Namespace) -> int:
    verbs = {"score": _score, "rate": _rate, "import": _import, "rank": _rank, "taste": _taste}
    return verbs[args.judge_verb](args)


def _score(args: argparse.Namespace) -> int:
    from brushwork.files import check_output_path
    from brushwork.judge.scores import LpipsVgg, score_outputs, write_contact_sheet, write_csv

    if not 32 <= args.size <= 1024:
        raise BrushworkError("--size must be between 32 and 1024")
    csv_path = check_output_path(args.csv, args.force, ".csv") if args.csv else None
    sheet_path = check_output_path(args.sheet, args.force, (".png", ".jpg", ".jpeg")) if args.sheet else None
    lpips = LpipsVgg(args.lpips_weights, args.vgg16_weights) if args.lpips_weights else None
    outputs = [*args.outputs, *([args.content, args.style] if args.references else [])]
    key = SORT_KEYS[args.sort]
    scores = sorted(score_outputs(outputs, args.content, args.style, size=args.size, lpips=lpips),
                    key=lambda s: getattr(s, key))  # fmt: skip
    videos = any(s.flicker is not None for s in scores)
    if sheet_path and videos:
        raise BrushworkError("--sheet is for images; score videos without it")
    if csv_path:
        write_csv(scores, csv_path)
    if sheet_path:
        write_contact_sheet(scores, sheet_path, key, force=args.force)
    if args.json:
        print(json.dumps({"sorted_by": key, "scores": [s.to_dict() for s in scores]}, indent=2))
        return 0
    names = ["artfid_lite0", "content", "style", "gram", "colour"] + (["lpips_vgg"] if lpips else [])
    names += ["flicker", "temporal_err"] if videos else []
    print("  ".join(f"{n:>12}" for n in names) + ("  video (style figures: middle frame)" if videos else "  image"))
    for s in scores:
        values = [s.artfid_lite0, s.content_distance, s.style_distance, s.gram_distance, s.colour_distance]
        values += [s.lpips_vgg] if lpips else []
        values += [s.flicker, s.temporal_error] if videos else []
        print("  ".join(f"{v:12.4f}" for v in values) + f"  {s.path}")
    print("(distances on the offline Lite0 backbone, lower is closer; artfid_lite0 is not the paper's ArtFID)")
    return 0


def _rate(args: argparse.Namespace) -> int:
    from brushwork.judge.ratings import RatingsStore

    if args.interactive:
        return _rate_interactive(args)
    if not (args.winner and args.loser):
        raise BrushworkError("give --winner and --loser, or --interactive")
    with RatingsStore(args.db) as store:
        j = store.rate(args.user, args.winner, args.loser, tie=args.tie)
    relation = "ties with" if j.tie else "preferred to"
    print(f"{j.rater}: {j.winner[:12]} {relation} {j.loser[:12]}")
    return 0


def _rate_interactive(args: argparse.Namespace) -> int:
    import shutil

    from brushwork.judge.ratings import RatingsStore
    from brushwork.judge.scores import image_files
    from brushwork.judge.taste import FeatureEmbedding, TasteModel
    from brushwork.judge.terminal import side_by_side
    from brushwork.media import load_image

    if args.rounds < 1:
        raise BrushworkError("--rounds must be at least 1")
    rated = 0
    with RatingsStore(args.db) as store:
        if args.add:
            store.add_images(image_files(args.add))
        embedding = FeatureEmbedding()  # loaded once; the store keeps every image's embedding
        skipped: set[tuple[str, str]] = set()
        for round_ in range(args.rounds):
            # Until their first rating a new user is asked what everyone's taste is least sure of.
            model = TasteModel.fit(store, args.user if args.user in store.raters() else None, embedding)
            model.rated_pairs |= {tuple(sorted((model.paths.index(a), model.paths.index(b)))) for a, b in skipped
                                  if a in model.paths and b in model.paths}  # fmt: skip
            a, b, _, _ = model.next_pair(seed=round_)
            print(side_by_side(load_image(a), load_image(b), shutil.get_terminal_size().columns))
            print(f"1: {a}\n2: {b}")
            try:
                answer = input("which do you prefer? [1/2, t = tie, s = skip, q = quit] ").strip().lower()
            except (EOFError, KeyboardInterrupt):
                answer = "q"
            if answer == "q":
                break
            if answer in ("1", "2", "t"):
                winner, loser = (b, a) if answer == "2" else (a, b)
                store.rate(args.user, winner, loser, tie=answer == "t")
                rated += 1
            else:
                skipped.add((a, b))
    print(f"{args.user}: {rated} judgements recorded")
    return 0


def _import(args: argparse.Namespace) -> int:
    from brushwork.judge.ratings import RatingsStore

    with RatingsStore(args.db) as store:
        report = store.import_csv(args.csv)
    reasons = ", ".join(f"{n} {why}" for why, n in report.reasons.items())
    print(f"imported {report.imported} judgements; skipped {report.skipped}" + (f" ({reasons})" if reasons else ""))
    return 0


def _rank(args: argparse.Namespace) -> int:
    from brushwork.judge.ratings import RatingsStore, check_bootstrap

    check_bootstrap(args.bootstrap, args.seed)
    bar = None

    def on_resample(done: int, total: int) -> None:  # each resample is a whole fit: show how far
        nonlocal bar
        bar = bar or progress_bar(total, unit="resample")
        bar.update(1)

    with RatingsStore(args.db, create=False, read_only=True) as store:
        try:
            ranking = store.rank(args.user, args.bootstrap, args.seed, on_resample=on_resample)
        finally:
            if bar is not None:
                bar.close()
        agreement = store.agreement() if args.user is None else []
    if args.json:
        print(json.dumps({"ranking": ranking.to_dict(), "agreement": [vars(a) for a in agreement]}, indent=2))
        return 0
    who = args.user or "everyone (pooled)"
    print(f"{who}: {ranking.judgements} judgements, Bradley-Terry strength with 95% {ranking.interval} interval")
    for place, r in enumerate(ranking.images, 1):
        print(f"{place:3d}  {r.strength:+7.2f}  [{r.low:+6.2f}, {r.high:+6.2f}]  "
              f"{r.wins:g}/{r.comparisons} won  {r.path}")  # fmt: skip
    for a in agreement:
        frac = "n/a" if a.agree_fraction is None else f"{a.agree_fraction:.0%}"
        tau = "n/a" if a.kendall_tau is None else f"{a.kendall_tau:+.2f}"
        print(f"agreement {a.rater_a} / {a.rater_b}: {frac} of {a.shared_pairs} shared pairs; "
              f"Kendall tau {tau} over {a.shared_images} shared images")  # fmt: skip
    return 0


def _taste(args: argparse.Namespace) -> int:
    from brushwork.judge.ratings import RatingsStore
    from brushwork.judge.taste import TasteModel

    with RatingsStore(args.db, create=False) as store:
        model = TasteModel.fit(store, args.user)
    if args.next_pair:
        a, b, p, gain = model.next_pair()
        if args.json:
            print(json.dumps({"a": a, "b": b, "p_a_preferred": p, "information_nats": gain}, indent=2))
        else:
            print(f"rate next: {a}\n       vs: {b}\n(predicted {p:.0%} for the first; {gain:.3f} nats to learn)")
        return 0
    scores = model.score(args.score)
    rows = sorted(zip(args.score, (float(s) for s in scores), strict=True), key=lambda r: -r[1])
    if args.json:
        scores_json = [{"image": i, "score": s} for i, s in rows]
        print(json.dumps({"user": args.user, "pooled": args.user is None, "scores": scores_json}, indent=2))
    else:
        for image, score in rows:
            print(f"{score:+8.3f}  {image}")
    return 0
