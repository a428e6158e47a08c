"""Speed and calibration of the ratings store: CSV import, Bradley–Terry ranks, 95 % intervals.

    python benchmarks/ratings_rank.py [--images 300] [--judgements 5000] [--bootstrap 50]

Simulated: images with normal true strengths, one rater whose answers follow the Bradley–Terry
model. Prints the seconds to import the CSV and to rank with Hessian and with bootstrap intervals,
the correlation of the fitted strengths with the truth, and the share of true strengths (centred)
inside each 95 % interval (0.95 is well calibrated).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from brushwork.judge.ratings import RatingsStore


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--judgements", type=int, default=5000)
    parser.add_argument("--bootstrap", type=int, default=50)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    truth = rng.normal(size=args.images)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for i in range(args.images):
            Image.new("RGB", (8, 8), (i % 256, i // 256, 7)).save(folder / f"{i}.png")
        lines = ["user,winner,loser"]
        for _ in range(args.judgements):
            a, b = rng.choice(args.images, 2, replace=False)
            a_wins = rng.random() < 1 / (1 + np.exp(truth[b] - truth[a]))
            lines.append(f"sim,{a if a_wins else b}.png,{b if a_wins else a}.png")
        (folder / "ratings.csv").write_text("\n".join(lines) + "\n")
        with RatingsStore(folder / "r.db") as store:
            start = time.perf_counter()
            report = store.import_csv(folder / "ratings.csv")
            print(f"import {report.imported} judgements of {args.images} images: {time.perf_counter() - start:.2f} s")
            number = {sha: int(Path(path).stem) for sha, path in store.images()}
            for bootstrap in (0, args.bootstrap):
                start = time.perf_counter()
                ranking = store.rank("sim", bootstrap=bootstrap)
                seconds = time.perf_counter() - start
                fitted = np.array([r.strength for r in ranking.images])
                true = truth[[number[r.sha256] for r in ranking.images]]
                true = true - true.mean()
                inside = np.mean([r.low <= t <= r.high for r, t in zip(ranking.images, true, strict=True)])
                print(f"rank, {ranking.interval} intervals ({bootstrap} resamples): {seconds:.2f} s; "
                      f"correlation with the truth {np.corrcoef(fitted, true)[0, 1]:.3f}; "
                      f"true strengths inside their 95 % interval: {inside:.0%}")  # fmt: skip


if __name__ == "__main__":
    main()
