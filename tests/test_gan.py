import gzip
import json
import os
import struct
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from brushwork.checkpoints import load_meta
from brushwork.cli import main
from brushwork.errors import BrushworkError
from brushwork.gan import sample as gs
from brushwork.gan.data import load_dataset
from brushwork.gan.losses import discriminator_loss, generator_loss
from brushwork.gan.model import GanConfig
from brushwork.gan.nets import MAX_WIDTH, Discriminator, Generator
from brushwork.gan.train import train_gan
from brushwork.judge.distribution import FeatureEmbedder, register_extractor
from brushwork.records import read_record
from brushwork.style.video import read_frames


def write_classes(root, per_class=6, size=40):
    """Two separable classes: dark images and bright ones, of mixed sizes and modes, plus one corrupt file."""
    rng = np.random.default_rng(0)
    for name, level in (("dark", 30), ("bright", 225)):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            arr = np.clip(level + rng.normal(0, 15, (size + i, size, 3)), 0, 255).astype(np.uint8)
            img = Image.fromarray(arr)
            (img.convert("L") if i % 2 else img).save(root / name / f"{i}.png")
    (root / "dark" / "broken.png").write_bytes(b"junk")
    return root


def tiny(**kw):
    base = dict(latent=16, g_width=8, d_width=8, batch_size=8, steps=6, checkpoint_every=3, sample_every=3,
                eval_every=0)  # fmt: skip
    base.update(kw)
    return base


def config_for(data, conditional=True, **kw):
    return GanConfig(resolution=data.resolution, channels=data.channels,
                     classes=len(data.class_names) if conditional else 0, **tiny(**kw))  # fmt: skip


def test_folder_data(tmp_path):
    data = load_dataset(str(write_classes(tmp_path / "d")), conditional=True)
    assert data.class_names == ["bright", "dark"] and len(data.skipped) == 1
    assert data.images.shape == (12, 3, 32, 32) and data.images.dtype == torch.uint8
    assert load_dataset(str(tmp_path / "d"), conditional=False).labels.max() == 0


def test_data_errors(tmp_path):
    with pytest.raises(BrushworkError, match="not found"):
        load_dataset(str(tmp_path / "none"), False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(BrushworkError, match="no images"):
        load_dataset(str(tmp_path / "empty"), False)
    (tmp_path / "one" / "only").mkdir(parents=True)
    Image.new("RGB", (40, 40)).save(tmp_path / "one" / "only" / "a.png")
    with pytest.raises(BrushworkError, match="at least two sub-folders"):
        load_dataset(str(tmp_path / "one"), True)


def test_idx_reader(tmp_path):
    folder = tmp_path / "fm"
    folder.mkdir()
    images = np.random.default_rng(0).integers(0, 255, (5, 28, 28), dtype=np.uint8)
    with gzip.open(folder / "train-images-idx3-ubyte.gz", "wb") as fh:
        fh.write(struct.pack(">IIII", 0x803, 5, 28, 28) + images.tobytes())
    with gzip.open(folder / "train-labels-idx1-ubyte.gz", "wb") as fh:
        fh.write(struct.pack(">II", 0x801, 5) + bytes([0, 1, 2, 3, 9]))
    data = load_dataset(str(folder), conditional=True)
    assert data.images.shape == (5, 1, 32, 32) and data.labels.tolist() == [0, 1, 2, 3, 9]
    assert data.class_names[9] == "boot"
    with gzip.open(folder / "train-labels-idx1-ubyte.gz", "wb") as fh:
        fh.write(struct.pack(">II", 0x801, 9) + bytes([0, 1]))
    with pytest.raises(BrushworkError, match="truncated"):
        load_dataset(str(folder), conditional=True)


def test_ema_warms_up():
    from brushwork.gan.train import ema_decay

    assert ema_decay(0.999, 0) == 0.1 and ema_decay(0.999, 10**6) == 0.999


def test_losses():
    scores = torch.tensor([-20.0, 0.0, 3.0], requires_grad=True)
    generator_loss("nonsaturating", scores[:1]).backward()
    assert scores.grad[0] < -0.9  # a confident D still gives G a strong gradient
    assert discriminator_loss("hinge", torch.tensor([2.0]), torch.tensor([-2.0])) == 0
    assert discriminator_loss("nonsaturating", torch.tensor([10.0]), torch.tensor([-10.0])) < 1e-3


def test_resume_is_exact(tmp_path):
    data = load_dataset(str(write_classes(tmp_path / "d")), conditional=True)
    train_gan(data, tmp_path / "straight", config_for(data, steps=6))
    train_gan(data, tmp_path / "halves", config_for(data, steps=3))
    with pytest.raises(BrushworkError, match="can change on resume, not lr_g"):
        train_gan(data, tmp_path / "halves", config_for(data), resume=True, resume_steps=6, resume_schedule={"lr_g": 1})
    # What is written when may change on resume; the training stays exact.
    train_gan(data, tmp_path / "halves", config_for(data), resume=True, resume_steps=6,
              resume_schedule={"sample_every": 1})  # fmt: skip
    assert (tmp_path / "halves" / "samples" / "step-0000005.png").exists()
    a, _, _ = gs.load_run(tmp_path / "straight")
    b, _, _ = gs.load_run(tmp_path / "halves")
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(p, q), name
    other = load_dataset(str(tmp_path / "d"), conditional=False)
    with pytest.raises(BrushworkError, match="other data or another architecture"):
        train_gan(other, tmp_path / "halves", config_for(other, False), resume=True, resume_steps=9)


def test_sampling_by_seed_and_truncation(tmp_path):
    data = load_dataset(str(write_classes(tmp_path / "d")), conditional=True)
    train_gan(data, tmp_path / "run", config_for(data, steps=2))
    g, cfg, classes = gs.load_run(tmp_path / "run")
    a = gs.generate(g, cfg, [1, 2], 0, None)
    assert torch.equal(a, gs.generate(g, cfg, [1, 2], 0, None))
    assert not torch.equal(a[0], a[1])
    assert gs.latent(3, 512, 0.5).abs().max() <= 0.5
    assert gs.parse_seeds("0-3,9") == [0, 1, 2, 3, 9]
    with pytest.raises(BrushworkError):
        gs.parse_seeds("a-b")


@pytest.mark.parametrize("conditioning", ["projection", "concat", "acgan"])
def test_conditional_sampling_honours_the_class(tmp_path, conditioning):
    data = load_dataset(str(write_classes(tmp_path / "d", per_class=16)), conditional=True)
    cfg = config_for(data, steps=150, batch_size=16, g_width=8, d_width=8, lr_g=2e-3, lr_d=2e-3, ema=0.9,
                     checkpoint_every=1000, sample_every=1000, conditioning=conditioning)  # fmt: skip
    train_gan(data, tmp_path / "run", cfg)
    g, cfg, classes = gs.load_run(tmp_path / "run")
    seeds = list(range(16))
    bright = gs.generate(g, cfg, seeds, classes.index("bright"), None).mean().item()
    dark = gs.generate(g, cfg, seeds, classes.index("dark"), None).mean().item()
    assert bright > dark + 0.5, (bright, dark)  # images are in -1..1


def test_cli(tmp_path, capsys):
    root = write_classes(tmp_path / "d")
    run = tmp_path / "run"
    train = ["gan", "train", str(root), "--out", str(run), "--conditional", "--steps", "4", "--batch-size", "4",
             "--latent", "16", "--g-width", "8", "--d-width", "8", "--sample-every", "2", "--eval-every", "0",
             "-q"]  # fmt: skip
    assert main(train) == 0
    assert sorted(p.name for p in (run / "samples").iterdir()) == ["step-0000002.png", "step-0000004.png"]
    assert main(train) == 2 and "--resume" in capsys.readouterr().err
    assert main([*train, "--resume", "--steps", "6"]) == 0
    out = tmp_path / "samples"
    assert main(["gan", "sample", str(run), "--seeds", "0-2", "-o", str(out)]) == 0
    assert sorted(p.name for p in (out / "dark").iterdir()) == ["seed00000.png", "seed00001.png", "seed00002.png"]
    assert read_record(out / "bright" / "seed00001.png").parameters["class_name"] == "bright"
    assert main(["gan", "sample", str(run), "--class", "dark", "--grid", "-o", str(tmp_path / "g.png")]) == 0
    # Unmarked clips: marking every frame is test_protect_video's subject, and costs a minute here.
    assert main(["gan", "interpolate", str(run), "--frames", "2", "-o", str(tmp_path / "w.gif"), "--no-watermark"]) == 0
    walk = Image.open(tmp_path / "w.gif")
    assert walk.n_frames == 8 and walk.size == (256, 256)  # 32 px shown 8x
    assert main(["gan", "interpolate", str(run), "--frames", "2", "-o", str(tmp_path / "w.mp4"), "--no-watermark"]) == 0
    assert len(read_frames(tmp_path / "w.mp4")) == 8
    assert main(["gan", "sample", str(run), "--class", "cat", "--grid", "-o", str(tmp_path / "c.png")]) == 2
    assert main(["gan", "sample", str(tmp_path), "-o", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "no class 'cat'" in err and "not a brushwork GAN run" in err and "Traceback" not in err


def test_discriminator_heads():
    x, y = torch.randn(4, 1, 32, 32), torch.tensor([0, 1, 2, 0])
    for conditioning, has_logits in (("projection", False), ("concat", False), ("acgan", True)):
        score, logits = Discriminator(32, 1, 8, 3, conditioning)(x, y)
        assert score.shape == (4,) and (logits is not None) == has_logits
        assert logits is None or logits.shape == (4, 3)
    # Widths are capped: 128 px at width 64 would otherwise start from 2048 channels.
    assert Generator(128, 3, 16, 64, 0).project.out_features == MAX_WIDTH * 16


def test_bf16_autocast_trains(tmp_path):
    data = load_dataset(str(write_classes(tmp_path / "d")), conditional=True)
    train_gan(data, tmp_path / "run", config_for(data, steps=2, precision="bf16"))
    g, cfg, _ = gs.load_run(tmp_path / "run")
    assert cfg.precision == "bf16" and torch.isfinite(gs.generate(g, cfg, [0, 1], 0, None)).all()
    assert json.loads((tmp_path / "run" / "options.json").read_text())["autocast"] == "bfloat16"


class TinyFeatures(torch.nn.Module):
    """A stand-in for a real backbone in the metric tests: random convolutions, a named layer."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 6, 3)

    def forward(self, x, layers):
        return {"out": torch.relu(self.conv(x))}


def test_training_logs_fid_and_kid(tmp_path, capsys):
    asked = []

    def tiny(device, weights):
        asked.append(weights)
        return FeatureEmbedder("tiny", TinyFeatures().to(device), "out", size=16)

    register_extractor("tiny", tiny)
    data = load_dataset(str(write_classes(tmp_path / "d")), conditional=True)
    train_gan(data, tmp_path / "run", config_for(data, steps=4, eval_every=2, eval_samples=12, eval_extractor="tiny"))
    lines = [json.loads(x) for x in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    evals = [x for x in lines if "fid_tiny" in x]
    assert [x["step"] for x in evals] == [2, 4] and all(x["fid_tiny"] >= 0 for x in evals)
    assert main(["gan", "evaluate", str(tmp_path / "run"), "--samples", "12"]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert figures["generated"] == 12 and figures["real"] == 12 and "kid_tiny" in figures
    assert 0 <= figures["precision_tiny"] <= 1 and 0 <= figures["recall_tiny"] <= 1
    main(["gan", "evaluate", str(tmp_path / "run"), "--samples", "12", "--extractor", "tiny",
          "--extractor-weights", "my-weights.pth"])  # fmt: skip
    assert asked[-1] == "my-weights.pth" and "fid_tiny" in json.loads(capsys.readouterr().out)
    # Evaluating must not disturb training: the same run without evaluation ends with the same weights.
    train_gan(data, tmp_path / "plain", config_for(data, steps=4))
    a, _, _ = gs.load_run(tmp_path / "run")
    b, _, _ = gs.load_run(tmp_path / "plain")
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values(), strict=True))


def test_two_processes_under_torchrun_resume_exactly(tmp_path):
    root = write_classes(tmp_path / "d")

    def torchrun(out, steps, *extra):
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m",
               "brushwork", "gan", "train", str(root), "--out", str(out), "--conditional", "--steps", str(steps),
               "--batch-size", "8", "--latent", "16", "--g-width", "8", "--d-width", "8", "--eval-every", "0",
               "--device", "cpu", "-q", *extra]  # fmt: skip
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]

    torchrun(tmp_path / "straight", 4)
    torchrun(tmp_path / "halves", 2)
    torchrun(tmp_path / "halves", 4, "--resume")
    meta = load_meta(tmp_path / "straight" / "checkpoint.safetensors")
    assert meta["processes"] == 2 and meta["step"] == 4
    a, _, _ = gs.load_run(tmp_path / "straight")
    b, _, _ = gs.load_run(tmp_path / "halves")
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(p, q), name
    # One process cannot continue a two-process run exactly; it says so.
    data = load_dataset(str(root), conditional=True)
    with pytest.raises(BrushworkError, match="2 process"):
        train_gan(data, tmp_path / "halves", config_for(data), resume=True, resume_steps=6)
