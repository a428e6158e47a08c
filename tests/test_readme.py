"""The README's shell blocks, run top to bottom in one fresh folder, as a new user would type them.

What the README's commands take as "your files" (photo.jpg, painting.jpg, photos/, clip.mp4, …) is made here
from the bundled examples and small synthetic files (``_inputs``). To run in CI time, each command is shrunk
by the substitutions in ``SHRINK`` (smaller pictures, fewer steps and frames): the same options, smaller
numbers. A block that needs what CI lacks (a GPU, CLIP weights, the network, a server left running) carries
``<!-- readme-test: skip REASON -->`` on the line before its fence and is skipped by name, so the skips are
counted in the test summary; any other block must run, and every command in it must end with exit code 0.
``pip install`` lines are taken as done (the test extras hold those packages) and ``. .venv/bin/activate``
is where the tests already run.
"""

from __future__ import annotations

import io
import math
import os
import re
import shlex
import shutil
import wave
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
EXAMPLES = ROOT / "brushwork" / "examples"
SKIP = re.compile(r"<!--\s*readme-test:\s*skip\s+(.+?)\s*-->")

# verb -> {flag: value or a function of the README's value}. A flag the command lacks is added (the last
# occurrence of a flag wins in argparse), one it has is replaced.
_STEPS = ("--steps", lambda v: str(max(1, math.ceil(int(v or 2000) / 1000))))
SHRINK: dict[tuple[str, ...], dict[str, object]] = {
    ("stylize",): {"--image-size": "48", "--iterations": "2", "--backbone": "lite0", "--scales": None},
    ("fast", "apply"): {"--image-size": "64"},
    ("fast", "train"): dict(
        [_STEPS],
        **{"--image-size": "32", "--batch-size": "1", "--backbone": "lite0", "--width": "8", "--residual-blocks": "1"},
    ),  # fmt: skip
    ("adain", "apply"): {"--image-size": "64"},
    ("adain", "train"): dict([_STEPS], **{"--image-size": "32", "--batch-size": "1", "--decoder-width": "16"}),
    ("video",): {"--max-frames": "3"},
    ("gan", "train"): dict(
        [_STEPS],
        **{"--batch-size": "4", "--eval-every": "0", "--g-width": "8", "--d-width": "8", "--sample-every": "1000"},
    ),  # fmt: skip
    ("gan", "evaluate"): {"--samples": "16"},
    ("gan", "sample"): {"--seeds": "0-3"},
    ("gan", "interpolate"): {"--frames": "2"},
}


def shell_blocks() -> list[tuple[int, str, str | None]]:
    """(line of the fence, the block's text, the skip reason or None) for each ```bash block."""
    lines = README.read_text(encoding="utf-8").splitlines()
    blocks, i = [], 0
    while i < len(lines):
        if lines[i].startswith("## "):
            NAMES.append(re.sub(r"[^a-z0-9]+", "-", lines[i][3:].lower()).strip("-"))
        if lines[i].strip() == "```bash":
            start, body = i + 1, []
            i += 1
            while lines[i].strip() != "```":
                body.append(lines[i])
                i += 1
            marker = SKIP.search(lines[start - 2]) if start >= 2 else None
            blocks.append((start, "\n".join(body), marker.group(1) if marker else None))
            IDS.append(f"{NAMES[-1] if NAMES else 'top'}-{sum(x.startswith(NAMES[-1]) for x in IDS) + 1}")
        i += 1
    return blocks


def commands(block: str) -> list[list[str]]:
    """The block's commands as argument lists (continuation lines joined, comments dropped)."""
    joined = re.sub(r"\\\n", " ", block)
    return [argv for line in joined.splitlines() if (argv := shlex.split(line, comments=True))]


def shrink(argv: list[str]) -> list[str]:
    for verb, changes in SHRINK.items():
        if tuple(argv[1 : 1 + len(verb)]) != verb:
            continue
        argv = list(argv)
        for flag, value in changes.items():
            where = argv.index(flag) if flag in argv else None
            given = argv[where + 1] if where is not None else None
            new = value(given) if callable(value) else value
            if where is not None:
                del argv[where : where + 2]
            if new is not None:
                argv += [flag, new]
    return argv


def _photo(path: Path, seed: int, size=(96, 72)) -> None:
    base = Image.open(EXAMPLES / "tubingen.jpg").convert("RGB")
    rng = np.random.default_rng(seed)
    box = rng.integers(0, 40, 2)
    crop = base.crop((int(box[0]), int(box[1]), base.width - int(box[1]), base.height - int(box[0])))
    crop.resize(size).save(path)


def _inputs(folder: Path) -> None:
    """The README's stand-ins for the user's files."""
    paintings = sorted(p for p in EXAMPLES.glob("*.jpg") if p.name != "tubingen.jpg")
    _photo(folder / "photo.jpg", 0)
    for name, src in zip(("painting", "monet", "hokusai", "starry", "shipwreck", "a", "b", "c"),
                         paintings * 8, strict=False):  # fmt: skip
        Image.open(src).convert("RGB").resize((80, 64)).save(folder / f"{name}.jpg")
    for name in ("photos", "paintings"):
        (folder / name).mkdir()
    for i in range(3):
        _photo(folder / "photos" / f"street-{i}.jpg", i + 1)
    _photo(folder / "more.jpg", 7)
    for i, src in enumerate(paintings[:3]):
        Image.open(src).convert("RGB").resize((80, 64)).save(folder / "paintings" / f"p{i}.jpg")
    half = np.zeros((72, 96), np.uint8)
    half[:36] = 255
    Image.fromarray(half).save(folder / "sky.png")
    for i, name in enumerate(("a", "b", "c")):
        third = np.zeros((72, 96), np.uint8)
        third[:, i * 32 : (i + 1) * 32] = 255
        Image.fromarray(third).save(folder / f"{name}-mask.png")
    for cls in ("monet", "turner"):
        (folder / "my-paintings" / cls).mkdir(parents=True)
        for i in range(8):
            _photo(folder / "my-paintings" / cls / f"{i}.png", 10 + i + (8 if cls == "turner" else 0), (32, 32))
    with wave.open(str(folder / "song.wav"), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(22050)
        t = np.arange(22050 * 2) / 22050
        out.writeframes((np.sin(2 * np.pi * 220 * t) * (t % 0.5 < 0.1) * 12000).astype("<i2").tobytes())
    _clip(folder / "clip.mp4")
    # protect and judge take pictures made elsewhere
    _photo(folder / "art.png", 20, (160, 128))
    (folder / "outs").mkdir()
    for i, name in enumerate(
        ("outs/one.png", "outs/two.png", "outs/three.png", "a.png", "b.png", "new1.png", "new2.png")
    ):
        _photo(folder / name, 30 + i, (64, 48))
    (folder / "ratings.csv").write_text("user,winner,loser\nann,outs/one.png,outs/two.png\nbob,a.png,outs/three.png\n")


def _clip(path: Path) -> None:
    """A short clip with a soundtrack, as a user's would have (the audio-reactive block uses its sound)."""
    pytest.importorskip("av")
    from tests.test_video import make_video

    make_video(path, frames=6, size=(64, 48), audio=True)


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    where = tmp_path_factory.mktemp("readme")
    home = where / "home"
    home.mkdir()
    work = where / "work"
    work.mkdir()
    _inputs(work)
    shutil.copytree(EXAMPLES, work / "brushwork" / "examples")  # the README's paths are from the repository root
    return work


NAMES: list[str] = []  # the README's sections, in order
IDS: list[str] = []  # each block's test id: its section and its number there (stable when lines move)
BLOCKS = shell_blocks()


def test_readme_has_blocks_to_run():
    assert sum(reason is None for _, _, reason in BLOCKS) >= 8


@pytest.mark.parametrize(("line", "block", "reason"), BLOCKS, ids=IDS)
def test_readme_block(line, block, reason, folder, monkeypatch, capsys):
    if reason:
        pytest.skip(f"README line {line}: {reason}")
    from brushwork.cli import main

    home = folder.parent / "home"
    monkeypatch.chdir(folder)
    monkeypatch.setenv("HOME", str(home))
    # The vault, keys and registry where the README says they are: in the user's folders.
    monkeypatch.setenv("BRUSHWORK_DATA_DIR", str(home / ".local" / "share" / "brushwork"))
    monkeypatch.setenv("BRUSHWORK_CONFIG_DIR", str(home / ".config" / "brushwork"))
    monkeypatch.setenv("BRUSHWORK_PASSPHRASE", "a README passphrase")
    monkeypatch.setattr("sys.stdin", io.StringIO("1\nq\n"))  # judge rate --interactive: one answer, then quit
    for argv in commands(block):
        if argv[:1] in (["."], ["source"]) or argv[:2] == ["pip", "install"]:
            continue
        assert argv[0] == "brushwork", f"README line {line}: {argv[0]} cannot run here; mark the block"
        argv = [os.path.expanduser(a) if a.startswith("~/") else a for a in shrink(argv)]
        code = main(argv[1:])
        err = capsys.readouterr().err
        assert code in (0, None), f"README line {line}: {shlex.join(argv)} -> {code}\n{err[-2000:]}"
