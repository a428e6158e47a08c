"""--taste-db: a user's ratings choose the settings of the next run (fast model, bundled, offline)."""

from __future__ import annotations

import pytest

from brushwork import api
from brushwork.cli import main
from brushwork.errors import BrushworkError
from brushwork.judge.ratings import RatingsStore
from brushwork.records import read_record
from tests.conftest import make_image


@pytest.fixture
def model_path():
    from pathlib import Path

    path = Path(api.__file__).parent / "examples" / "starry_night-fast.safetensors"
    if not path.exists():
        pytest.skip("bundled fast model missing")
    return path


def _rated_store(tmp_path, model_path, prefers: float, other: float):
    """A rater who, on several photos, always prefers the fast model at strength ``prefers``."""
    db = tmp_path / "ratings.db"
    model = api.load_model(model_path)
    with RatingsStore(db) as store:
        for i in range(5):
            photo = make_image(96, 64, seed=i, kind=("gradient", "noise", "stripes")[i % 3])
            paths = {}
            for strength in (prefers, other):
                out = tmp_path / f"p{i}-{strength}.png"
                # Unprotected: the ratings are the subject, and marking a noisy 96 px painting takes seconds.
                api.save(api.fast_apply(model, photo, strength=strength), out, protection=None)
                paths[strength] = out
            store.rate("ann", paths[prefers], paths[other])
    return db


@pytest.mark.parametrize("prefers, other, expect", [(1.0, 0.2, lambda s: s >= 0.8), (0.2, 1.0, lambda s: s <= 0.6)])
def test_fast_apply_takes_the_strength_the_user_likes(tmp_path, model_path, capsys, prefers, other, expect):
    db = _rated_store(tmp_path, model_path, prefers, other)
    photo = tmp_path / "photo.png"
    make_image(96, 64, seed=9).save(photo)
    out = tmp_path / "out.png"
    code = main(["fast", "apply", str(model_path), str(photo), "-o", str(out), "--taste-db", str(db), "--user", "ann",
                 "--no-watermark"])  # fmt: skip
    assert code == 0
    assert "taste of ann" in capsys.readouterr().err
    record = read_record(out)
    chosen = record.extra["taste"]["settings"]
    assert expect(chosen["strength"]) and record.parameters["strength"] == chosen["strength"]
    assert record.extra["taste"]["user"] == "ann" and record.extra["taste"]["previews"] == 8


def test_taste_bad_input(tmp_path, model_path, capsys):
    photo = tmp_path / "photo.png"
    make_image().save(photo)
    argv = ["fast", "apply", str(model_path), str(photo), "-o", str(tmp_path / "o.png")]
    assert main([*argv, "--taste-db", str(tmp_path / "none.db"), "--user", "ann"]) == 2
    assert "no such ratings database" in capsys.readouterr().err
    db = _rated_store(tmp_path, model_path, 1.0, 0.2)
    assert main([*argv, "--taste-db", str(db), "--user", "bob"]) == 2
    assert "bob" in capsys.readouterr().err
    assert not (tmp_path / "o.png").exists()
    with pytest.raises(BrushworkError, match="not gan"):
        api.taste_settings("gan", photo, taste_db=db, user="ann")
