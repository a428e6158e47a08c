"""How many ratings the taste model needs: simulated raters with hidden preferences.

    python benchmarks/taste_simulated.py [--shared ../shared] [--work /tmp/taste-bench] [--repeats 5]

Images: every photo in ../shared/images (content/ and photos/), 192 px, painted by the bundled fast
Starry Night model at strengths 0, 0.35, 0.7 and 1, by the bundled AdaIN decoder with each shared
painting (alpha 0.5; alpha 1 with the style at 96 px, fine strokes, and at 288 px, coarse strokes),
plus darker and brighter copies of the 0.7 outputs. They are embedded as the taste model does
(Lite0 statistics, PCA over all of them to the taste model's default 8 dimensions).

Raters: four hidden tastes, three raters each: strong style (the engine's strength/alpha),
fine strokes (high-frequency energy of the luminance), bright, dark (mean luminance). A rater
prefers a over b with probability sigmoid(4 (u_a - u_b)), u the standardised attribute (the share
of answers against their own taste is printed). With --shared-taste W every rater also likes strong
style, with weight W against their own taste: a crowd that agrees on something, where the pooled
prior has more to give than in the divided crowd of the default.

Measured: accuracy on pairs of held-out images (a quarter of the images, never rated), against
the rater's noiseless preference, after n of their own ratings, for the taste model (prior: the
pooled model of the other eleven raters' 100 ratings each), the pooled-only model (everyone's
ratings together, this rater's n included), a personal model without the prior, and random
guessing; then the taste model's pairs chosen by next_pair against random pairs.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from brushwork.judge.taste import (
    DIMENSIONS,
    USER_PENALTY,
    FeatureEmbedding,
    Projection,
    TasteModel,
    best_settings,
    fit_preference,
    most_informative_pair,
)
from brushwork.media import image_to_tensor, load_image, resize_long_side

EXAMPLES = Path(__file__).resolve().parents[1] / "brushwork" / "examples"
COUNTS = (10, 20, 50, 100, 200)
TASTES = ("strong style", "fine strokes", "bright", "dark")
RATERS_PER_TASTE = 3
NOISE_SLOPE = 4.0
OTHERS_RATINGS = 100


def make_images(shared: Path, work: Path) -> list[tuple[Path, float]]:
    """(image path, style strength) for every picture, made once into ``work``."""
    from brushwork.backbones import load_backbone
    from brushwork.style.adain import apply_adain, load_adain
    from brushwork.style.feedforward import apply_feedforward, load_feedforward

    work.mkdir(parents=True, exist_ok=True)
    photos = sorted((shared / "images" / "content").iterdir()) + sorted((shared / "images" / "photos").iterdir())
    styles = [load_image(p) for p in sorted((shared / "images" / "style").iterdir())]
    fast, _ = load_feedforward(EXAMPLES / "starry_night-fast.safetensors")
    adain = load_adain(EXAMPLES / "adain-lite0.safetensors", load_backbone("lite0"))
    made = []

    def keep(name: str, strength: float, render, *render_args, **render_kwargs) -> None:
        path = work / f"{name}.png"
        if not path.exists():
            render(*render_args, **render_kwargs).save(path)
        made.append((path, strength))

    def fast_output(photo, strength: float):
        return apply_feedforward(fast, [photo], strength=strength)[0]

    def scaled(img, gain: float):
        return img.point(lambda v: min(255, round(v * gain)))

    for photo_path in photos:
        photo = resize_long_side(load_image(photo_path), 192)
        stem = photo_path.stem
        for s in (0.0, 0.35, 0.7, 1.0):
            keep(f"{stem}-fast{s}", s, fast_output, photo, s)
        for k, style in enumerate(styles):
            for alpha, size in ((0.5, 192), (1.0, 96), (1.0, 288)):
                keep(f"{stem}-adain{k}-{alpha}-{size}", alpha, apply_adain, adain, photo, [style], alpha=alpha,
                     style_size=size)  # fmt: skip
        for gain in (0.6, 1.4):
            keep(f"{stem}-fast0.7-light{gain}", 0.7, scaled, fast_output(photo, 0.7), gain)
    return made


def raw_attributes(image, strength: float) -> dict[str, float]:
    """What each hidden taste looks at in one image (PIL), before standardising."""
    lum = image_to_tensor(image)[0].double().mean(0)
    blurred = torch.nn.functional.avg_pool2d(lum[None, None], 5, 1, 2, count_include_pad=False)[0, 0]
    light = float(lum.mean())
    return {"strong style": strength, "fine strokes": float((lum - blurred).abs().mean()), "bright": light,
            "dark": -light}  # fmt: skip


def attributes(paths_strengths: list[tuple[Path, float]]) -> dict[str, np.ndarray]:
    """The hidden attributes each taste cares about, standardised over the images."""
    rows = [raw_attributes(load_image(path), strength) for path, strength in paths_strengths]
    raw = {taste: np.array([row[taste] for row in rows]) for taste in TASTES}
    return {k: (v - v.mean()) / v.std() for k, v in raw.items()}


def rate(rng, utility: np.ndarray, pool: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """``count`` noisy judgements on random pairs of ``pool``: (winners, losers)."""
    a = rng.choice(pool, count)
    b = rng.choice(pool, count)
    same = a == b
    while same.any():
        b[same] = rng.choice(pool, int(same.sum()))
        same = a == b
    a_wins = rng.random(count) < 1 / (1 + np.exp(-NOISE_SLOPE * (utility[a] - utility[b])))
    return np.where(a_wins, a, b), np.where(a_wins, b, a)


def answer(rng, utility: np.ndarray, a: int, b: int) -> tuple[int, int]:
    a_wins = rng.random() < 1 / (1 + np.exp(-NOISE_SLOPE * (utility[a] - utility[b])))
    return (a, b) if a_wins else (b, a)


def accuracy(weights: np.ndarray, z: np.ndarray, utility: np.ndarray, test_pairs: np.ndarray) -> float:
    a, b = test_pairs[:, 0], test_pairs[:, 1]
    predicted = (z[a] - z[b]) @ weights > 0
    truth = utility[a] > utility[b]
    return float(np.mean(predicted == truth))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shared", default=str(Path(__file__).resolve().parents[2] / "shared"))
    parser.add_argument("--work", default="/tmp/brushwork-taste-bench")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--dims", type=int, default=DIMENSIONS)
    parser.add_argument("--settings", action="store_true", help="also measure best_settings on AdaIN previews")
    parser.add_argument("--penalty", type=float, default=USER_PENALTY, help="of the user's fit (and the pooled)")
    parser.add_argument(
        "--shared-taste",
        type=float,
        default=0.0,
        help="weight of a taste every rater shares (strong style) on top of their own; 0 = a divided crowd",
    )
    args = parser.parse_args()
    torch.set_num_threads(2)

    start = time.perf_counter()
    made = make_images(Path(args.shared), Path(args.work))
    print(f"{len(made)} images made in {time.perf_counter() - start:.0f} s")
    start = time.perf_counter()
    embedding = FeatureEmbedding()
    cache = Path(args.work) / f"embeddings-{embedding.name}-{len(made)}.npy"
    if cache.exists():
        x = np.load(cache)
        embedding([load_image(made[0][0])])  # the statistic groups
    else:
        x = np.concatenate([embedding([load_image(p) for p, _ in made[i : i + 32]]) for i in range(0, len(made), 32)])
        np.save(cache, x)
    projection = Projection.fit(x, embedding.groups, args.dims)
    z = projection(x)
    print(f"embedded in {time.perf_counter() - start:.0f} s; {x.shape[1]} statistics -> {z.shape[1]} dimensions")
    hidden = attributes(made)
    if args.shared_taste:
        common = hidden["strong style"]
        hidden = {t: u + args.shared_taste * common if t != "strong style" else u for t, u in hidden.items()}
        hidden = {t: u / u.std() for t, u in hidden.items()}
    raters = [taste for taste in TASTES for _ in range(RATERS_PER_TASTE)]

    results: dict[str, dict[int, list[float]]] = {}
    flips = []

    def record(name: str, n: int, value: float) -> None:
        results.setdefault(name, {}).setdefault(n, []).append(value)

    for rep in range(args.repeats):
        rng = np.random.default_rng(rep)
        order = rng.permutation(len(made))
        held_out, pool = order[: len(made) // 4], order[len(made) // 4 :]
        test_pairs = rng.choice(held_out, (3000, 2))
        test_pairs = test_pairs[test_pairs[:, 0] != test_pairs[:, 1]]
        others = {r: rate(rng, hidden[t], pool, OTHERS_RATINGS) for r, t in enumerate(raters)}
        for user, taste in enumerate(raters):
            u = hidden[taste]
            w_o = np.concatenate([others[r][0] for r in others if r != user])
            l_o = np.concatenate([others[r][1] for r in others if r != user])
            prior = fit_preference(z, w_o, l_o, penalty=args.penalty)
            own_w, own_l = rate(rng, u, pool, max(COUNTS))
            flips.append(np.mean(u[own_w] < u[own_l]))
            record("random guess", 0, float(np.mean(rng.random(len(test_pairs)) < 0.5)))
            for n in COUNTS:
                personal = fit_preference(z, own_w[:n], own_l[:n], prior=prior.weights, penalty=args.penalty)
                pooled = fit_preference(
                    z, np.concatenate([w_o, own_w[:n]]), np.concatenate([l_o, own_l[:n]]), penalty=args.penalty
                )
                alone = fit_preference(z, own_w[:n], own_l[:n], penalty=args.penalty)
                record("taste model (pooled prior)", n, accuracy(personal.weights, z, u, test_pairs))
                record("pooled only", n, accuracy(pooled.weights, z, u, test_pairs))
                record("personal, no prior", n, accuracy(alone.weights, z, u, test_pairs))
            # Active learning: next_pair's choice against random pairs, the same prior.
            winners, losers, rated = [], [], set()
            pref = fit_preference(z[pool], [], [], prior=prior.weights, penalty=args.penalty)
            for n in range(1, 101):
                i, j, _ = most_informative_pair(pref, z[pool], rated, seed=n)
                rated.add((min(i, j), max(i, j)))
                win, lose = answer(rng, u, pool[i], pool[j])
                winners.append(win)
                losers.append(lose)
                pref = fit_preference(z, np.array(winners), np.array(losers), prior=prior.weights, penalty=args.penalty)
                if n in COUNTS:
                    record("taste model, next_pair", n, accuracy(pref.weights, z, u, test_pairs))
        print(f"repeat {rep + 1}/{args.repeats} done", flush=True)

    if args.repeats:
        print_accuracy(results, made, raters, flips)
    if args.settings:
        settings_choice(args, made, embedding, projection, z, hidden, raters)


def print_accuracy(results: dict, made: list, raters: list[str], flips: list[float]) -> None:
    print(f"\n{len(made)} images, {len(raters)} raters, answers against their own taste: {np.mean(flips):.0%}")
    print("held-out pairwise accuracy (mean over raters and repeats) by number of the rater's ratings")
    print(f"| model | {' | '.join(str(n) for n in COUNTS)} |")
    print(f"|---|{'---|' * len(COUNTS)}")
    for name, by_n in results.items():
        cells = [
            f"{np.mean(by_n[n]):.2f}" if n in by_n else (f"{np.mean(by_n[0]):.2f}" if 0 in by_n else "") for n in COUNTS
        ]
        print(f"| {name} | {' | '.join(cells)} |")
    print("\nby taste, taste model (pooled prior) / pooled only, at 20 and 100 ratings:")
    for t, taste in enumerate(TASTES):
        rows = []
        for name in ("taste model (pooled prior)", "pooled only", "taste model, next_pair"):
            values = results[name]
            for n in (20, 100):
                picked = [v for k, v in enumerate(values[n]) if (k % len(raters)) // RATERS_PER_TASTE == t]
                rows.append(f"{name}@{n}: {np.mean(picked):.2f}")
        print(f"  {taste}: " + "; ".join(rows))


def settings_choice(args, made, embedding, projection, z, hidden, raters) -> None:
    """best_settings on AdaIN previews for a rater of each taste taught by 60 random ratings: where the
    chosen preview ranks among all of them by the rater's true taste (1 = their favourite)."""
    from brushwork.backbones import load_backbone
    from brushwork.style.adain import apply_adain, load_adain

    model = load_adain(EXAMPLES / "adain-lite0.safetensors", load_backbone("lite0"))
    photo = load_image(EXAMPLES / "tubingen.jpg")
    style = load_image(Path(args.shared) / "images" / "style" / "starry_night.jpg")
    space = {"style_size": [96, 192, 384], "alpha": [0.4, 0.7, 1.0], "preserve_colors": ["none", "histogram"]}
    previews: dict[tuple, object] = {}

    def render(settings: dict):
        key = tuple(settings.values())
        if key not in previews:
            previews[key] = apply_adain(model, [photo], [style], image_size=192, **settings)[0]
        return previews[key]

    pool = np.arange(len(made))
    print(f"\nbest_settings on AdaIN previews ({np.prod([len(v) for v in space.values()])} settings), "
          "after 60 ratings; true rank of the chosen preview (1 = the rater's favourite), over 5 seeds:")  # fmt: skip
    for taste in TASTES:
        ranks, chosen = [], []
        for seed in range(5):
            rng = np.random.default_rng(100 + seed)
            others = [rate(rng, hidden[t], pool, OTHERS_RATINGS) for t in raters[1:]]
            prior = fit_preference(z, np.concatenate([o[0] for o in others]), np.concatenate([o[1] for o in others]))
            winners, losers = rate(rng, hidden[taste], pool, 60)
            personal = fit_preference(z, winners, losers, prior=prior.weights)
            taste_model = TasteModel(taste, embedding, projection, prior, personal, [], [], z)
            search = best_settings(taste_model, render, space)
            truth = {tuple(c.values()): raw_attributes(render(c), c["alpha"])[taste] for c, _ in search.results}
            best = truth[tuple(search.best.values())]
            ranks.append(1 + sum(value > best for value in truth.values()))  # ties share a rank
            chosen.append(search.best)
        print(f"  {taste}: ranks {ranks}; e.g. {chosen[0]}")


if __name__ == "__main__":
    main()
