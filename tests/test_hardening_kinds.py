"""Hostile input, round 2 (#20): each case a clear one-line error (CLI exit 2, REST 4xx), nothing half-written.

Each test stands for a kind of failure, not the one instance the issue found.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from brushwork.cli import main


def _grey_folder(root, n=6, size=36):
    rng = np.random.default_rng(0)
    root.mkdir(parents=True)
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(root / f"{i}.png")
    return root


def test_gan_train_takes_resolution_and_channels_from_the_command_line(tmp_path, capsys):
    data = _grey_folder(tmp_path / "d")
    run = tmp_path / "run"
    argv = ["gan", "train", str(data), "--out", str(run), "--steps", "1", "--batch-size", "2", "--latent", "8",
            "--g-width", "8", "--d-width", "8", "--sample-every", "1", "--eval-every", "0",
            "--resolution", "32", "--channels", "1"]  # fmt: skip
    assert main(argv) == 0, capsys.readouterr().err
    config = json.loads(capsys.readouterr().err.strip().splitlines()[0])["config"]
    assert (config["resolution"], config["channels"]) == (32, 1)  # colour photos, trained grey as asked


# -- 7: a full disk while a trainer saves ------------------------------------------------------------


@pytest.fixture
def refusing_disk(monkeypatch):
    """Every checkpoint write meets a real OS refusal inside safetensors' own writer: a file-size limit
    (RLIMIT_FSIZE, EFBIG) set only while it writes, as a full disk (ENOSPC) would refuse it."""
    import resource
    import signal

    import brushwork.checkpoints as checkpoints

    real = checkpoints.save_file

    def save_file(tensors, path, metadata=None):
        old = resource.getrlimit(resource.RLIMIT_FSIZE)
        handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (1024, old[1]))
        try:
            return real(tensors, path, metadata=metadata)
        finally:
            resource.setrlimit(resource.RLIMIT_FSIZE, old)
            signal.signal(signal.SIGXFSZ, handler)

    monkeypatch.setattr(checkpoints, "save_file", save_file)


def test_full_disk_while_training_is_one_line_and_leaves_no_partial_file(tmp_path, refusing_disk, tiny_net,
                                                                         monkeypatch, capsys):  # fmt: skip
    from tests.conftest import make_image

    monkeypatch.setattr("brushwork.backbones.load_backbone", lambda *a, **k: tiny_net)
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(2):
        make_image(40, 36, i).save(photos / f"p{i}.png")
    make_image(40, 40, 5, "stripes").save(tmp_path / "style.png")
    out = tmp_path / "models"
    out.mkdir()
    fast = ["fast", "train", "--style", str(tmp_path / "style.png"), "--content-dir", str(photos), "-q",
            "-o", str(out / "m.safetensors"), "--steps", "1", "--image-size", "32", "--batch-size", "1"]  # fmt: skip
    assert main(fast) == 2
    err = capsys.readouterr().err
    assert err.startswith("brushwork: error: ") and err.count("\n") == 1 and "Traceback" not in err
    assert "could not write" in err and "m.safetensors" in err
    assert list(out.iterdir()) == []  # no partial model, no temp file

    data = _grey_folder(tmp_path / "d")
    run = tmp_path / "run"
    gan = ["gan", "train", str(data), "--out", str(run), "--steps", "1", "--batch-size", "2", "--latent", "8",
           "--g-width", "8", "--d-width", "8", "--sample-every", "1", "--eval-every", "0", "-q"]  # fmt: skip
    assert main(gan) == 2
    err = capsys.readouterr().err
    assert err.startswith("brushwork: error: ") and err.count("\n") == 1 and "could not write" in err
    assert not run.exists()  # a run that never reached its first checkpoint leaves nothing


# -- 8: a damaged or foreign database is named, never replaced or extended ---------------------------


def _damaged_and_foreign(folder):
    import sqlite3

    folder.mkdir(parents=True, exist_ok=True)
    damaged = folder / "damaged.db"
    damaged.write_bytes(b"SQLite format 3\0" + b"\x07garbage" * 600)
    foreign = folder / "foreign.db"
    with sqlite3.connect(foreign) as db:
        db.execute("CREATE TABLE invoices (n INTEGER)")
    return damaged, foreign


@pytest.mark.parametrize("verb", ["serve", "worker"])
def test_damaged_studio_database_is_one_line_naming_it(tmp_path, verb, monkeypatch, capsys):
    pytest.importorskip("fastapi")
    import uvicorn

    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: None)  # serve builds its app, then would listen
    damaged, foreign = _damaged_and_foreign(tmp_path / "files")
    for source, word in ((damaged, "damaged"), (foreign, "another program")):
        data = tmp_path / f"data-{source.stem}"
        data.mkdir()
        (data / "studio.db").write_bytes(source.read_bytes())
        before = (data / "studio.db").read_bytes()
        argv = [verb, "--data", str(data)] + (["--burst"] if verb == "worker" else ["--port", "8799"])
        assert main(argv) == 2
        err = capsys.readouterr().err.splitlines()[-1]
        assert err.startswith("brushwork: error: ") and str(data / "studio.db") in err and word in err
        assert (data / "studio.db").read_bytes() == before  # never silently replaced or extended


def test_foreign_sqlite_files_get_no_tables_added(tmp_path, capsys):
    from brushwork.errors import BrushworkError
    from brushwork.judge.ratings import RatingsStore
    from brushwork.protect.registry import Registry

    _, foreign = _damaged_and_foreign(tmp_path)
    before = foreign.read_bytes()
    with pytest.raises(BrushworkError, match="another program"):
        RatingsStore(foreign)
    with pytest.raises(BrushworkError, match="another program"):
        Registry(foreign).reserve()
    assert main(["judge", "rank", "--db", str(foreign)]) == 2
    assert "another program" in capsys.readouterr().err
    assert foreign.read_bytes() == before


# -- 9: one hostile model file in DATA/models ----------------------------------------------------------


def test_a_deeply_nested_model_json_is_skipped_not_a_500(tmp_path):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from brushwork.studio.app import asgi_app
    from brushwork.studio.config import StudioConfig

    config = StudioConfig(data_dir=tmp_path / "data", session_token="t0ken").prepare()
    (config.models / "evil.safetensors").write_bytes(b"\0" * 16)
    (config.models / "evil.json").write_text("[" * 100_000 + "]" * 100_000)
    (config.models / "evilrun").mkdir()
    (config.models / "evilrun" / "options.json").write_text('{"a":' * 100_000 + "1" + "}" * 100_000)
    auth = {"Authorization": "Bearer t0ken"}
    with TestClient(asgi_app(config, worker=False), base_url="http://127.0.0.1") as client:
        models = client.get("/api/models")
        assert models.status_code == 200
        names = {m["name"] for m in models.json()}
        assert "starry_night-fast" in names and "evil" not in names
        job = {"engine": "fast", "model": "starry_night-fast", "content_ref": "example:tubingen.jpg"}
        assert client.post("/api/jobs", data=job, headers=auth).status_code == 202
        refused = client.post("/api/jobs", data={**job, "model": "evil"}, headers=auth)
        assert refused.status_code == 400 and "no model named 'evil'" in refused.json()["detail"]
    # A run folder's options are read when a gan-sample job runs: one line there too.
    from brushwork.errors import BrushworkError
    from brushwork.gan.model import read_options

    with pytest.raises(BrushworkError, match="options.json: unreadable"):
        read_options(config.models / "evilrun")


# -- 10: damaged rows --------------------------------------------------------------------------------


def _rate(db, winner, loser):
    return main(["judge", "rate", "--db", db, "--user", "u", "--winner", str(winner), "--loser", str(loser)])


def _shades(folder, n=4):
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for k in range(n):
        paths.append(folder / f"shade{k}.png")
        Image.fromarray(np.full((32, 32, 3), 30 + 50 * k, np.uint8)).save(paths[-1])
    return paths


def test_damaged_stored_embeddings_are_computed_again(tmp_path, capsys):
    import sqlite3

    shades = _shades(tmp_path / "img")
    db = str(tmp_path / "r.db")
    for a, b in [(3, 0), (2, 1), (3, 1)]:
        assert _rate(db, shades[a], shades[b]) == 0
    capsys.readouterr()
    taste = ["judge", "taste", "--db", db, "--user", "u", "--json", "--score", str(shades[0]), str(shades[3])]
    assert main(taste) == 0
    before = json.loads(capsys.readouterr().out)
    with sqlite3.connect(db) as con:
        rows = con.execute("SELECT sha256, length(vector) FROM embeddings").fetchall()
        assert len(rows) == 4
        con.execute("UPDATE embeddings SET vector = substr(vector, 1, 4) WHERE sha256 = ?", (rows[0][0],))
        con.execute("UPDATE embeddings SET vector = substr(vector, 1, 16) WHERE sha256 = ?", (rows[1][0],))
    assert main(taste) == 0, capsys.readouterr().err
    assert json.loads(capsys.readouterr().out) == before
    with sqlite3.connect(db) as con:  # and the cache mended
        assert {n for _, n in con.execute("SELECT sha256, length(vector) FROM embeddings")} == {rows[2][1]}


def test_registry_rows_with_broken_json_are_one_line(tmp_path, capsys):
    import sqlite3

    from brushwork.protect.registry import Registry, perceptual_hash

    picture = _shades(tmp_path / "img", 1)[0]
    reg = tmp_path / "registry.sqlite"
    registry = Registry(reg)
    work_id = registry.reserve()
    registry.register(work_id, picture, "0" * 64, perceptual_hash(Image.open(picture)), {"engine": "x"}, {"m": 1})
    for column in ("record", "manifest"):
        with sqlite3.connect(reg) as con:
            con.execute("UPDATE works SET record = ?, manifest = ? WHERE id = ?",
                        ('{"ok": 1}', '{"ok": 1}', work_id))  # fmt: skip
            con.execute(f"UPDATE works SET {column} = ? WHERE id = ?", ('{"cut', work_id))
        assert main(["registry", "find", str(picture), "--registry", str(reg)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("brushwork: error: ") and err.count("\n") == 1
        assert f"work {work_id}'s stored {column} is damaged" in err and str(reg) in err


# -- 11: numbers out of range ---------------------------------------------------------------------------


def test_numbers_out_of_range_are_one_line(tmp_path, capsys):
    from brushwork.protect.registry import Registry

    reg = tmp_path / "registry.sqlite"
    Registry(reg).reserve()
    for work in ("100000000000000000000000", "-5", "0"):
        out = tmp_path / "bundle.json"
        assert main(["registry", "export", work, "-o", str(out), "--registry", str(reg)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("brushwork: error: ") and f"work {work} is not in" in err and not out.exists()

    shades = _shades(tmp_path / "img", 3)
    db = str(tmp_path / "r.db")
    assert _rate(db, shades[2], shades[0]) == 0 and _rate(db, shades[1], shades[0]) == 0
    capsys.readouterr()
    for extra in (["--bootstrap", "5", "--seed", "-1"], ["--bootstrap", "5", "--seed", str(2**64)],
                  ["--bootstrap", "-3"], ["--bootstrap", "10001"]):  # fmt: skip
        assert main(["judge", "rank", "--db", db, *extra]) == 2
        err = capsys.readouterr().err
        assert err.startswith("brushwork: error: ") and err.count("\n") == 1, extra
    assert main(["judge", "rank", "--db", db, "--bootstrap", "5", "--seed", "3", "--json"]) == 0
    assert "resample" in capsys.readouterr().err  # the bootstrap shows its progress


# -- minor kinds ----------------------------------------------------------------------------------------


@pytest.fixture
def read_only_folder(tmp_path):
    """A folder nobody may write: mode 555, or for root (who writes anywhere) the immutable attribute."""
    import os
    import shutil
    import subprocess

    folder = tmp_path / "ro"
    folder.mkdir()
    if os.geteuid() != 0:
        yield folder, lambda: folder.chmod(0o555)
        folder.chmod(0o755)
        return
    if not shutil.which("chattr"):
        pytest.skip("root, and no chattr to make a folder read-only")

    def lock():
        if subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode:
            pytest.skip("root, and this file system has no immutable attribute")

    yield folder, lock
    subprocess.run(["chattr", "-i", str(folder)], capture_output=True)


def test_ranking_reads_a_database_in_a_read_only_folder(read_only_folder, tmp_path, capsys):
    folder, lock = read_only_folder
    shades = _shades(tmp_path / "img", 3)
    db = str(folder / "r.db")
    assert _rate(db, shades[2], shades[0]) == 0 and _rate(db, shades[1], shades[0]) == 0
    lock()
    capsys.readouterr()
    assert main(["judge", "rank", "--db", db, "--json"]) == 0, capsys.readouterr().err
    assert len(json.loads(capsys.readouterr().out)["ranking"]["images"]) == 3
    assert sorted(p.name for p in folder.iterdir()) == ["r.db"]


def test_a_refused_rate_leaves_no_new_database_and_says_why(tmp_path, capsys):
    import os

    shades = _shades(tmp_path / "img", 2)
    db = tmp_path / "new.db"
    (tmp_path / "text.png").write_text("not a picture")
    assert _rate(str(db), shades[0], tmp_path / "text.png") == 2
    assert "not an image" in capsys.readouterr().err
    assert not list(tmp_path.glob("new.db*"))
    if os.geteuid() != 0:  # root reads anything
        shades[1].chmod(0)
        assert _rate(str(db), shades[0], shades[1]) == 2
        assert "permission denied" in capsys.readouterr().err


def test_raw_pickle_weights_are_one_short_line(tmp_path):
    import pickle

    from brushwork.backbones.weights import load_state_dict_file
    from brushwork.errors import BrushworkError

    path = tmp_path / "w.pth"
    path.write_bytes(pickle.dumps({"weight": [1.0, 2.0]}, protocol=4))
    with pytest.raises(BrushworkError) as caught:
        load_state_dict_file(path)
    text = str(caught.value)
    assert "\n" not in text and "weights_only" not in text and len(text) < 300
    assert "raw pickle" in text


def test_passphrase_without_terminal_or_empty_is_one_line(monkeypatch, capfd):
    import getpass

    from brushwork.errors import BrushworkError
    from brushwork.protect.vault import PASSPHRASE_ENV, passphrase_from_user

    monkeypatch.setenv(PASSPHRASE_ENV, "")
    with pytest.raises(BrushworkError, match="set but empty"):
        passphrase_from_user()
    monkeypatch.delenv(PASSPHRASE_ENV)

    def no_terminal(prompt="Password: ", stream=None):  # what getpass does when /dev/tty cannot be opened
        return getpass.fallback_getpass(prompt, stream)

    monkeypatch.setattr(getpass, "getpass", no_terminal)
    with pytest.raises(BrushworkError, match="run in a terminal"):
        passphrase_from_user()
    assert "echoed" not in capfd.readouterr().err


def test_two_runs_writing_the_same_new_output_the_second_fails(tmp_path, monkeypatch, capsys):
    from pathlib import Path

    import brushwork.output as output
    from brushwork import api
    from tests.conftest import make_image

    model = Path(api.__file__).parent / "examples" / "starry_night-fast.safetensors"
    photo, out = tmp_path / "photo.png", tmp_path / "out.png"
    make_image(48, 32).save(photo)
    real = output.atomic_write  # the output exit's own write

    def racing(path, write):  # the other run publishes while this one encodes its picture
        def write_late(tmp):
            write(tmp)
            Path(path).write_bytes(b"the other run's picture")

        return real(path, write_late)

    monkeypatch.setattr(output, "atomic_write", racing)
    argv = ["fast", "apply", str(model), str(photo), "-o", str(out), "--image-size", "32"]
    assert main(argv) == 2
    # the first protected output of a fresh config also announces the new signing key on a line of its own
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("brushwork: error: ")]
    assert len(errors) == 1 and "written by another run meanwhile" in errors[0]
    assert out.read_bytes() == b"the other run's picture"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png", "photo.png"]  # no temp file left
    monkeypatch.setattr(output, "atomic_write", real)
    assert main([*argv, "--force"]) == 0 and out.read_bytes() != b"the other run's picture"
