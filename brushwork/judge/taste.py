"""Personal taste: a per-user preference model on image embeddings, learnt from pairwise ratings.

Each image becomes a short vector: backbone features (channel means and spreads at the style
layers), Gram statistics of the early layers (brush texture), and colour statistics (brightness,
contrast, saturation, edge energy), each group standardised and given equal weight, then reduced
by PCA over the store's images. A user's taste is a logistic Bradley–Terry model on those vectors,

    P(a beats b) = sigmoid(w · (z_a - z_b)),

fitted by Newton's method with an L2 penalty. Everyone's judgements give the pooled ``w₀`` (penalty
toward 0); a user's ``w`` is penalised toward ``w₀``, so a new user starts from everyone's taste and
moves away as their own ratings come in. The fit is written here rather than imported: it is a
dozen lines of numpy (a D×D Newton step), and its Hessian is also the Laplace posterior that
:func:`most_informative_pair` needs, which scikit-learn's LogisticRegression does not expose.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image

from brushwork.errors import BrushworkError

#: Penalty of the pooled fit (toward 0) and of a user's fit (toward the pooled weights), on whitened features.
POOLED_PENALTY = 1.0
USER_PENALTY = 1.0
#: PCA dimensions kept (fewer when the store has fewer images).
DIMENSIONS = 8
#: Pairs scored when looking for the most informative one (a random subset beyond this).
MAX_CANDIDATE_PAIRS = 20000


# -- embeddings -----------------------------------------------------------------------------------------


class FeatureEmbedding:
    """Images -> (N, D) float64 vectors of grouped statistics. ``network`` defaults to the offline Lite0
    backbone; tests pass a tiny random one. ``groups`` names the column ranges of each statistic group."""

    version = 1

    def __init__(self, network: torch.nn.Module | None = None, size: int = 224, gram_layers: int = 2):
        if network is None:
            from brushwork.backbones import load_backbone

            network = load_backbone("lite0")
        self.network = network.eval()
        self.size = size
        self.layers = tuple(network.style_layers)
        self.gram_layers = self.layers[:gram_layers]
        self.name = f"{network.name}-{size}-v{self.version}"
        self.groups: dict[str, slice] = {}

    @torch.no_grad()
    def __call__(self, images: Sequence[Image.Image]) -> np.ndarray:
        from brushwork.media import image_to_tensor, resize_long_side
        from brushwork.style.losses import gram_matrix

        rows = []
        for img in images:
            x = image_to_tensor(resize_long_side(img.convert("RGB"), self.size))
            features = self.network(x, self.layers)
            parts: dict[str, np.ndarray] = {}
            for name in self.layers:
                f = features[name][0].flatten(1).double()
                parts[f"{name} mean/std"] = torch.cat([f.mean(1), f.std(1)]).numpy()
            for name in self.gram_layers:
                gram = gram_matrix(features[name])[0].double()
                upper = torch.triu_indices(len(gram), len(gram))  # the Gram matrix is symmetric
                parts[f"{name} gram"] = gram[upper[0], upper[1]].numpy()
            parts["colour"] = colour_statistics(x[0])
            self.groups, start = {}, 0
            for key, value in parts.items():
                self.groups[key] = slice(start, start + len(value))
                start += len(value)
            rows.append(np.concatenate(list(parts.values())))
        return np.stack(rows)


def colour_statistics(image: torch.Tensor) -> np.ndarray:
    """(3, H, W) in 0..1 -> per-channel mean and spread, brightness, contrast, saturation, edge energy."""
    x = image.double()
    brightness = x.mean(0)
    saturation = x.max(0).values - x.min(0).values
    edges = (brightness[1:, :] - brightness[:-1, :]).abs().mean() + (
        brightness[:, 1:] - brightness[:, :-1]
    ).abs().mean()
    return torch.cat(
        [
            x.flatten(1).mean(1),
            x.flatten(1).std(1),
            torch.stack([brightness.mean(), brightness.std(), saturation.mean(), edges]),
        ]  # fmt: skip
    ).numpy()


@dataclass
class Projection:
    """Standardise each column, weight each statistic group equally, PCA, whiten."""

    mean: np.ndarray
    scale: np.ndarray
    components: np.ndarray  #: (k, D)
    spread: np.ndarray  #: (k,) standard deviation along each component

    @classmethod
    def fit(cls, x: np.ndarray, groups: Mapping[str, slice] | None = None, dims: int = DIMENSIONS) -> Projection:
        if len(x) < 2:
            raise BrushworkError("the taste model needs at least two images in the store")
        mean = x.mean(0)
        scale = x.std(0) + 1e-8
        if groups:
            # Each group as a whole counts as much as any other, however many columns it has.
            for part in groups.values():
                scale[part] *= np.sqrt(part.stop - part.start)
        centred = (x - mean) / scale
        _, s, vt = np.linalg.svd(centred, full_matrices=False)
        # Directions with almost no spread are noise; whitening would blow them up.
        k = max(1, min(dims, len(x) - 1, int((s > 1e-3 * s[0]).sum())))
        spread = s[:k] / np.sqrt(len(x) - 1)
        return cls(mean, scale, vt[:k], spread)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return ((x - self.mean) / self.scale) @ self.components.T / self.spread


# -- the preference model --------------------------------------------------------------------------------


def _sigmoid(t: np.ndarray) -> np.ndarray:
    return 0.5 * (1 + np.tanh(0.5 * t))


@dataclass
class Preference:
    """Weights of the utility ``z · w`` and their Laplace posterior covariance."""

    weights: np.ndarray
    covariance: np.ndarray
    judgements: int = 0

    def utility(self, z: np.ndarray) -> np.ndarray:
        return z @ self.weights

    def win_probability(self, za: np.ndarray, zb: np.ndarray) -> np.ndarray:
        return _sigmoid((za - zb) @ self.weights)

    def information(self, za: np.ndarray, zb: np.ndarray) -> np.ndarray:
        """Expected information (nats) one more judgement of a vs b gives about ``w``, under the Laplace
        posterior: ½ log(1 + p(1-p) dᵀΣd). Highest for pairs the model can't call and knows little about."""
        d = za - zb
        p = _sigmoid(d @ self.weights)
        return 0.5 * np.log1p(p * (1 - p) * np.einsum("...i,ij,...j->...", d, self.covariance, d))


def fit_preference(z: np.ndarray, winners: np.ndarray, losers: np.ndarray, outcomes: np.ndarray | None = None,
                   prior: np.ndarray | None = None, penalty: float = USER_PENALTY,
                   iterations: int = 50) -> Preference:  # fmt: skip
    """L2-penalised logistic Bradley–Terry on ``z[winners] - z[losers]`` (``outcomes`` 1, or 0.5 for a
    tie), penalised toward ``prior`` (default 0), by Newton's method."""
    dims = z.shape[1]
    prior = np.zeros(dims) if prior is None else prior
    d = z[np.asarray(winners, int)] - z[np.asarray(losers, int)] if len(winners) else np.zeros((0, dims))
    y = np.ones(len(d)) if outcomes is None else np.asarray(outcomes, float)
    w = prior.copy()

    def objective(v: np.ndarray) -> float:
        t = d @ v  # the negative log-likelihood with soft labels: log(1 + e^t) - y t
        return float(np.sum(np.logaddexp(0, t) - y * t) + 0.5 * penalty * np.sum((v - prior) ** 2))

    current = objective(w)
    for _ in range(iterations):
        p = _sigmoid(d @ w)
        gradient = d.T @ (p - y) + penalty * (w - prior)
        hessian = (d.T * (p * (1 - p))) @ d + penalty * np.eye(dims)
        step = np.linalg.solve(hessian, gradient)
        # Backtracking: a full Newton step can overshoot on nearly separable judgements.
        scale = 1.0
        while scale > 1e-4 and objective(w - scale * step) > current:
            scale /= 2
        w = w - scale * step
        current = objective(w)
        if np.abs(scale * step).max() < 1e-8:
            break
    p = _sigmoid(d @ w)
    hessian = (d.T * (p * (1 - p))) @ d + penalty * np.eye(dims)
    return Preference(w, np.linalg.inv(hessian), len(d))


def most_informative_pair(pref: Preference, z: np.ndarray, exclude: set[tuple[int, int]] = frozenset(),
                          seed: int = 0, max_pairs: int = MAX_CANDIDATE_PAIRS) -> tuple[int, int, float]:  # fmt: skip
    """(i, j, information) of the unrated pair whose outcome would teach the model the most."""
    n = len(z)
    if n < 2:
        raise BrushworkError("need at least two images to choose a pair")
    total = n * (n - 1) // 2
    if total <= max_pairs:
        pairs = np.array(list(itertools.combinations(range(n), 2)))
    else:
        rng = np.random.default_rng(seed)
        pairs = rng.integers(0, n, (max_pairs, 2))
        pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    if exclude:
        keep = [(min(a, b), max(a, b)) not in exclude for a, b in pairs]
        pairs = pairs[np.array(keep, bool)]
    if not len(pairs):
        raise BrushworkError("every pair of images has been rated already")
    gain = pref.information(z[pairs[:, 0]], z[pairs[:, 1]])
    best = int(np.argmax(gain))
    return int(pairs[best, 0]), int(pairs[best, 1]), float(gain[best])


# -- a user's taste over a ratings store --------------------------------------------------------------------


@dataclass
class TasteModel:
    """A user's (or, with ``user=None``, everyone's) taste over the images of a ratings store."""

    user: str | None
    embedding: Callable[[Sequence[Image.Image]], np.ndarray]
    projection: Projection
    pooled: Preference
    personal: Preference
    images: list[str]  #: store hashes, in the order of ``z``
    paths: list[str]
    z: np.ndarray
    rated_pairs: set[tuple[int, int]] = field(default_factory=set)

    @classmethod
    def fit(cls, store, user: str | None, embedding: Callable | None = None, dims: int = DIMENSIONS,
            pooled_penalty: float = POOLED_PENALTY, user_penalty: float = USER_PENALTY) -> TasteModel:  # fmt: skip
        """Fit on ``store`` (a :class:`~brushwork.judge.ratings.RatingsStore`): pooled on every judgement,
        then ``user``'s own, penalised toward the pooled weights."""
        if user is not None:
            store.require_rater(user)
        embedding = embedding or FeatureEmbedding()
        images, x = _store_embeddings(store, embedding, store.images())
        if len(images) < 2:
            raise BrushworkError(f"{store.path}: the taste model needs at least two images it can read")
        shas = [sha for sha, _ in images]
        projection = Projection.fit(x, getattr(embedding, "groups", None), dims)
        z = projection(x)
        index = {sha: i for i, sha in enumerate(shas)}

        def arrays(judgements):
            judgements = [j for j in judgements if j.winner in index and j.loser in index]
            return (
                np.array([index[j.winner] for j in judgements], int),
                np.array([index[j.loser] for j in judgements], int),
                np.array([0.5 if j.tie else 1.0 for j in judgements]),
            )

        everyone = store.judgements()
        pooled = fit_preference(z, *arrays(everyone), penalty=pooled_penalty)
        personal = pooled
        rated: set[tuple[int, int]] = set()
        if user is not None:
            own = store.judgements(user)
            personal = fit_preference(z, *arrays(own), prior=pooled.weights, penalty=user_penalty)
            rated = {
                tuple(sorted((index[j.winner], index[j.loser]))) for j in own if {j.winner, j.loser} <= index.keys()
            }
        return cls(user, embedding, projection, pooled, personal, shas, [p for _, p in images], z, rated)

    def embed(self, images: Sequence[str | os.PathLike | Image.Image]) -> np.ndarray:
        from brushwork.media import load_image

        pictures = [img if isinstance(img, Image.Image) else load_image(img) for img in images]
        return self.projection(self.embedding(pictures))

    def score(self, images: Sequence[str | os.PathLike | Image.Image]) -> np.ndarray:
        """How much this user is predicted to like each image (a utility: higher is better; differences
        are log-odds of preferring one over the other)."""
        if not images:
            return np.zeros(0)
        return self.personal.utility(self.embed(images))

    def next_pair(self, seed: int = 0) -> tuple[str, str, float, float]:
        """(path a, path b, P(a preferred), information) of the most informative pair to rate next."""
        i, j, gain = most_informative_pair(self.personal, self.z, self.rated_pairs, seed)
        p = float(self.personal.win_probability(self.z[i], self.z[j]))
        return self.paths[i], self.paths[j], p, gain


def _store_embeddings(store, embedding, images: list[tuple[str, str]]) -> tuple[list[tuple[str, str]], np.ndarray]:
    """The store's images that can be embedded, and their embeddings: computed once per embedder and kept
    in the store. An image whose file is gone (and not embedded before) is left out."""
    from brushwork.media import load_image

    name = getattr(embedding, "name", None)
    cached = store.cached_embeddings(name, [sha for sha, _ in images]) if name else {}

    def embed(wanted: list[tuple[str, str]]) -> dict:
        pictures = {}
        for sha, path in wanted:
            try:
                pictures[sha] = load_image(path)
            except BrushworkError:
                continue  # moved or deleted since it was rated
        if not pictures:
            return {}
        fresh = dict(zip(pictures, embedding(list(pictures.values())), strict=True))
        if name:
            store.store_embeddings(name, fresh)
        return fresh

    fresh = embed([(sha, path) for sha, path in images if sha not in cached])
    if fresh:
        # Stored rows of another length than this embedder gives are damaged: embed those again.
        size = np.size(next(iter(fresh.values())))
        stale = {sha for sha, v in cached.items() if np.size(v) != size}
        cached = {sha: v for sha, v in cached.items() if sha not in stale}
        cached.update(fresh)
        cached.update(embed([(sha, path) for sha, path in images if sha in stale]))
    elif hasattr(embedding, "groups") and not embedding.groups:
        embedding([Image.new("RGB", (64, 64))])  # learn the layout of the statistic groups
    kept = [(sha, path) for sha, path in images if sha in cached]
    return kept, np.stack([cached[sha] for sha, _ in kept]) if kept else np.zeros((0, 0))


# -- choosing style-transfer settings ----------------------------------------------------------------------

#: Settings spaces for each engine: keyword -> candidate values. Pass your own for other knobs.
GATYS_SPACE = {
    "style_weight": [5.0, 20.0, 80.0],
    "style_scale": [0.5, 1.0, 1.5],
    "preserve_colors": ["none", "luminance"],
}
FAST_SPACE = {"strength": [0.4, 0.6, 0.8, 1.0], "preserve_colors": ["none", "luminance"]}
ADAIN_SPACE = {"strength": [0.4, 0.6, 0.8, 1.0], "preserve_colors": ["none", "luminance", "histogram"]}


@dataclass
class SettingsSearch:
    best: dict
    results: list[tuple[dict, float]]  #: (settings, predicted utility), best first


def best_settings(model: TasteModel, render: Callable[[dict], Image.Image], space: Mapping[str, Sequence] = GATYS_SPACE,
                  trials: int | None = None, seed: int = 0) -> SettingsSearch:  # fmt: skip
    """The settings whose preview ``model`` predicts the user likes most.

    ``render(settings)`` makes a small preview with those keyword settings (e.g.
    ``lambda s: brushwork.stylize(photo, [painting], image_size=128, iterations=40, **s)``). Every
    combination in ``space`` is tried, or ``trials`` of them drawn at random (seeded).
    """
    names = list(space)
    if not names or any(len(space[n]) == 0 for n in names):
        raise BrushworkError("the settings space needs at least one value for each setting")
    combos = [dict(zip(names, values, strict=True)) for values in itertools.product(*(space[n] for n in names))]
    if trials is not None and trials < len(combos):
        if trials < 1:
            raise BrushworkError("trials must be at least 1")
        rng = np.random.default_rng(seed)
        combos = [combos[i] for i in sorted(rng.choice(len(combos), trials, replace=False))]
    utilities = model.score([render(dict(c)) for c in combos])
    results = sorted(zip(combos, (float(u) for u in utilities), strict=True), key=lambda r: -r[1])
    return SettingsSearch(results[0][0], results)
