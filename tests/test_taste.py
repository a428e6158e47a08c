"""Taste model: simulated raters with hidden preferences; it must learn them, start from the pooled taste,
ask informative questions, and pick the settings a user likes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from brushwork.errors import BrushworkError
from brushwork.judge.ratings import RatingsStore
from brushwork.judge.taste import FeatureEmbedding, TasteModel, best_settings, fit_preference, most_informative_pair
from tests.conftest import TinyNet


def _simulated(rng, z, hidden, count, noise=1.0):
    """A rater who prefers a over b with probability sigmoid(hidden · (z_a - z_b) / noise)."""
    a = rng.integers(0, len(z), count)
    b = (a + rng.integers(1, len(z), count)) % len(z)
    p = 1 / (1 + np.exp(-((z[a] - z[b]) @ hidden) / noise))
    a_wins = rng.random(count) < p
    return np.where(a_wins, a, b), np.where(a_wins, b, a)


def _accuracy(pref, z, hidden, rng, count=2000):
    a = rng.integers(0, len(z), count)
    b = (a + rng.integers(1, len(z), count)) % len(z)
    truth = (z[a] - z[b]) @ hidden > 0
    return float(np.mean((pref.win_probability(z[a], z[b]) > 0.5) == truth))


def test_learns_a_clear_hidden_preference_from_60_ratings():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(150, 12))
    hidden = np.zeros(12)
    hidden[3] = 2.0  # e.g. "bright": one direction of the embedding matters
    winners, losers = _simulated(rng, z, hidden, 60)
    learnt = fit_preference(z, winners, losers)
    assert _accuracy(learnt, z, hidden, rng) > 0.75
    # a model that learned nothing is at chance
    nothing = fit_preference(z, winners[:0], losers[:0])
    assert np.allclose(nothing.weights, 0)


def test_pooled_prior_gives_a_new_user_everyone_s_taste():
    rng = np.random.default_rng(1)
    z = rng.normal(size=(100, 8))
    shared = rng.normal(size=8)
    winners, losers = _simulated(rng, z, shared, 300)
    pooled = fit_preference(z, winners, losers)
    newcomer = fit_preference(z, winners[:0], losers[:0], prior=pooled.weights)
    assert np.allclose(newcomer.weights, pooled.weights)
    assert _accuracy(newcomer, z, shared, rng) > 0.85
    # a user with the opposite taste moves away from the prior as their ratings come in
    w2, l2 = _simulated(rng, z, -shared, 150)
    contrarian = fit_preference(z, w2, l2, prior=pooled.weights)
    assert _accuracy(contrarian, z, -shared, rng) > 0.75


def test_most_informative_pair_is_uncertain_and_unrated():
    rng = np.random.default_rng(2)
    z = rng.normal(size=(30, 4))
    pref = fit_preference(z, *_simulated(rng, z, np.array([3.0, 0, 0, 0]), 40))
    i, j, gain = most_informative_pair(pref, z, exclude={(0, 1)})
    assert (min(i, j), max(i, j)) != (0, 1)
    all_gains = [pref.information(z[a], z[b]) for a in range(30) for b in range(a + 1, 30)]
    assert gain == pytest.approx(max(all_gains))
    assert gain > np.median(all_gains)
    with pytest.raises(BrushworkError, match="already"):
        most_informative_pair(pref, z[:2], exclude={(0, 1)})


def _grey(level: int, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    arr = np.clip(level + rng.normal(0, 12, (24, 24, 3)), 0, 255).astype(np.uint8)
    return Image.fromarray(arr, "RGB")


@pytest.fixture
def bright_store(tmp_path):
    """Images from dark to bright; 'sun' prefers bright ones, 'moon' dark ones (a few noisy answers)."""
    paths = []
    for k in range(10):
        paths.append(tmp_path / f"img{k}.png")
        _grey(20 + 22 * k, k).save(paths[-1])
    store = RatingsStore(tmp_path / "r.db")
    rng = np.random.default_rng(0)
    for _ in range(30):
        a, b = rng.choice(10, 2, replace=False)
        bright, dark = (a, b) if a > b else (b, a)
        store.rate("sun", paths[bright], paths[dark])
        store.rate("moon", paths[dark], paths[bright])
    for _ in range(40):  # most raters like bright pictures
        a, b = rng.choice(10, 2, replace=False)
        store.rate("crowd", paths[max(a, b)], paths[min(a, b)])
    yield store
    store.close()


def test_taste_model_on_a_store_scores_unseen_images_by_each_user_s_taste(bright_store, tmp_path):
    embedding = FeatureEmbedding(TinyNet().freeze(), size=32)
    unseen = [_grey(200, 100), _grey(40, 101)]
    sun = TasteModel.fit(bright_store, "sun", embedding)
    moon = TasteModel.fit(bright_store, "moon", embedding)
    assert sun.score(unseen)[0] > sun.score(unseen)[1]
    assert moon.score(unseen)[0] < moon.score(unseen)[1]
    # the embeddings were kept in the store, and a refit gives the same model
    assert len(bright_store.cached_embeddings(embedding.name, [s for s, _ in bright_store.images()])) == 10
    again = TasteModel.fit(bright_store, "sun", embedding)
    assert np.allclose(again.personal.weights, sun.personal.weights)
    a, b, p, gain = sun.next_pair()
    assert a != b and 0 <= p <= 1 and gain >= 0
    with pytest.raises(BrushworkError, match="unknown rater"):
        TasteModel.fit(bright_store, "nobody", embedding)


def test_best_settings_picks_the_preview_the_user_likes(bright_store):
    embedding = FeatureEmbedding(TinyNet().freeze(), size=32)
    sun = TasteModel.fit(bright_store, "sun", embedding)
    rendered = []

    def render(settings):
        rendered.append(settings)
        return _grey(int(40 + 180 * settings["strength"]), 7)

    search = best_settings(sun, render, {"strength": [0.2, 0.5, 1.0], "preserve_colors": ["none"]})
    assert search.best == {"strength": 1.0, "preserve_colors": "none"}
    assert [s for s, _ in search.results][-1]["strength"] == 0.2
    assert len(rendered) == 3
    few = best_settings(sun, render, {"strength": [0.1, 0.2, 0.3, 0.4, 0.9]}, trials=2, seed=1)
    assert len(few.results) == 2


def test_an_image_whose_file_is_gone_is_left_out(bright_store):
    embedding = FeatureEmbedding(TinyNet().freeze(), size=32)
    paths = [Path(p) for _, p in bright_store.images()]
    paths[0].unlink()  # never embedded: left out, with its judgements
    model = TasteModel.fit(bright_store, "sun", embedding)
    assert len(model.images) == 9
    again = TasteModel.fit(bright_store, "sun", FeatureEmbedding(TinyNet().freeze(), size=32))  # all cached now
    assert np.allclose(again.personal.weights, model.personal.weights)
