"""brushwork judge …: the commands end to end, and bad input as one clear line with exit code 2."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from brushwork.cli import main
from tests.conftest import make_image


@pytest.fixture
def shades(tmp_path: Path) -> list[Path]:
    """Six pictures from dark to bright."""
    paths = []
    rng = np.random.default_rng(0)
    for k in range(6):
        paths.append(tmp_path / f"shade{k}.png")
        arr = np.clip(30 + 40 * k + rng.normal(0, 10, (40, 40, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(arr, "RGB").save(paths[-1])
    return paths


def test_score_prints_a_sorted_table_and_writes_csv_and_sheet(tmp_path, images, capsys):
    out_dir = tmp_path / "outs"
    out_dir.mkdir()
    make_image(48, 32, 3, "noise").save(out_dir / "a.png")
    make_image(48, 32, 0, "gradient").save(out_dir / "b.png")
    table, sheet = tmp_path / "t.csv", tmp_path / "sheet.png"
    argv = ["judge", "score", str(out_dir), "--content", str(images["content"]), "--style", str(images["style"])]
    assert main([*argv, "--json", "--csv", str(table), "--sheet", str(sheet), "--size", "48"]) == 0
    result = json.loads(capsys.readouterr().out)
    figures = [s["artfid_lite0"] for s in result["scores"]]
    assert figures == sorted(figures) and len(figures) == 2
    assert Path(result["scores"][0]["path"]).name == "b.png"  # the copy of the photo keeps its content
    with open(table) as fh:
        assert [row["path"] for row in csv.DictReader(fh)] == [s["path"] for s in result["scores"]]
    assert Image.open(sheet).size[0] > 0
    assert main([*argv, "--csv", str(table)]) == 2  # exists: needs --force
    assert "--force" in capsys.readouterr().err
    assert main([*argv, "--sort", "style", "--size", "48"]) == 0
    assert "not the paper's ArtFID" in capsys.readouterr().out


def test_rate_import_rank_and_taste(tmp_path, shades, capsys):
    db = str(tmp_path / "r.db")
    for a, b in [(5, 0), (4, 1), (3, 2), (5, 2), (4, 0), (5, 4)]:
        assert (
            main(["judge", "rate", "--db", db, "--user", "sun", "--winner", str(shades[a]), "--loser", str(shades[b])])
            == 0
        )
    ratings = tmp_path / "ratings.csv"
    ratings.write_text(
        "user,winner,loser,tie\n"
        + "".join(f"moon,{shades[a].name},{shades[b].name},0\n" for a, b in [(0, 5), (1, 4), (2, 3), (0, 3)])
        + "moon,shade1.png,shade1.png,0\nmoon,nowhere.png,shade1.png,0\n"
    )
    assert main(["judge", "import", "--db", db, str(ratings)]) == 0
    assert "imported 4 judgements; skipped 2" in capsys.readouterr().out
    assert main(["judge", "rank", "--db", db, "--user", "sun", "--json", "--bootstrap", "20"]) == 0
    ranking = json.loads(capsys.readouterr().out)["ranking"]
    assert Path(ranking["images"][0]["path"]).name == "shade5.png"
    assert main(["judge", "rank", "--db", db, "--bootstrap", "20"]) == 0
    assert "agreement moon / sun" in capsys.readouterr().out
    assert (
        main(["judge", "taste", "--db", db, "--user", "sun", "--json", "--score", str(shades[1]), str(shades[4])]) == 0
    )
    scores = json.loads(capsys.readouterr().out)["scores"]
    assert Path(scores[0]["image"]).name == "shade4.png"
    assert main(["judge", "taste", "--db", db, "--user", "sun", "--next-pair", "--json"]) == 0
    pair = json.loads(capsys.readouterr().out)
    assert pair["a"] != pair["b"] and 0 <= pair["p_a_preferred"] <= 1


@pytest.mark.parametrize(
    "argv, message",
    [
        (["rate", "--user", "sun", "--winner", "{0}", "--loser", "{0}"], "against itself"),
        (["rate", "--user", "sun", "--winner", "{0}", "--loser", "{missing}"], "no such file"),
        (["rank", "--user", "nobody"], "unknown rater"),
        (["taste", "--user", "nobody", "--next-pair"], "unknown rater"),
        (["import", "{missing}"], "no such file"),
    ],
)
def test_bad_input_is_one_line_and_leaves_the_database_unchanged(tmp_path, shades, capsys, argv, message):
    db = tmp_path / "r.db"
    assert (
        main(["judge", "rate", "--db", str(db), "--user", "sun", "--winner", str(shades[0]), "--loser", str(shades[1])])
        == 0
    )
    before = db.read_bytes(), (tmp_path / "r.db-wal").read_bytes() if (tmp_path / "r.db-wal").exists() else b""
    capsys.readouterr()
    filled = [a.format(shades[0], missing=tmp_path / "missing.png") for a in argv]
    assert main(["judge", filled[0], "--db", str(db), *filled[1:]]) == 2
    err = capsys.readouterr().err
    assert err.startswith("brushwork: error: ") and message in err and err.count("\n") == 1
    after = db.read_bytes(), (tmp_path / "r.db-wal").read_bytes() if (tmp_path / "r.db-wal").exists() else b""
    assert after == before


def test_a_corrupt_database_is_refused(tmp_path, shades, capsys):
    db = tmp_path / "r.db"
    db.write_bytes(b"\0garbage" * 512)
    assert main(["judge", "rank", "--db", str(db)]) == 2
    assert "not a ratings database" in capsys.readouterr().err
    assert main(["judge", "rank", "--db", str(tmp_path / "absent.db")]) == 2
    assert not (tmp_path / "absent.db").exists()


def test_taste_without_a_user_is_everyone_s(tmp_path, shades, capsys):
    db = str(tmp_path / "r.db")
    for a, b in [(5, 0), (4, 1), (3, 2), (5, 2)]:
        assert (
            main(["judge", "rate", "--db", db, "--user", "sun", "--winner", str(shades[a]), "--loser", str(shades[b])])
            == 0
        )
    capsys.readouterr()
    assert main(["judge", "taste", "--db", db, "--json", "--score", str(shades[0]), str(shades[5])]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["pooled"] and Path(result["scores"][0]["image"]).name == "shade5.png"


def test_interactive_rating_asks_the_next_pair_and_records_answers(tmp_path, shades, capsys, monkeypatch):
    db = str(tmp_path / "r.db")
    answers = iter(["1", "s", "t", "q"])
    monkeypatch.setattr("builtins.input", lambda prompt: next(answers))
    argv = ["judge", "rate", "--db", db, "--user", "new", "--interactive", "--add", str(tmp_path), "--rounds", "9"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "\u2580" in out and "new: 2 judgements recorded" in out
    assert main(["judge", "rank", "--db", db, "--user", "new", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["ranking"]["judgements"] == 2
    assert main(["judge", "rate", "--db", db, "--user", "new"]) == 2
    assert "--interactive" in capsys.readouterr().err
