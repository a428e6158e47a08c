"""The one training skeleton: Ctrl-C at any moment, then --resume, gives the same tensors as a run that
was never interrupted (feed-forward, AdaIN and GAN); leftovers of a killed run are cleaned up."""

import os
import signal
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from brushwork.errors import BrushworkError
from brushwork.files import atomic_write, remove_stale_temps
from brushwork.gan.data import load_dataset
from brushwork.gan.train import train_gan
from brushwork.style.adain import AdainConfig, train_adain
from brushwork.style.feedforward import FastConfig, train_feedforward
from brushwork.training import INTERRUPT_NOTE
from tests.conftest import make_image
from tests.test_gan import config_for, write_classes

STEPS = 6


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("photos")
    for i in range(3):
        make_image(40, 36, seed=i, kind="noise" if i % 2 else "gradient").save(folder / f"p{i}.png")
    return folder


@pytest.fixture(scope="module")
def gan_data(tmp_path_factory):
    return load_dataset(str(write_classes(tmp_path_factory.mktemp("gan") / "d", per_class=3)), conditional=True)


def fast(photos, tiny, out, resume=False):
    cfg = FastConfig(width=4, residual_blocks=1, image_size=32, batch_size=1, steps=STEPS, checkpoint_every=3)
    style = make_image(40, 40, 1, "stripes")
    return lambda **kw: train_feedforward(style, photos, out, tiny, None if resume else cfg, resume=resume,
                                          resume_steps=STEPS if resume else None, **kw)  # fmt: skip


def adain(photos, tiny, out, resume=False):
    cfg = AdainConfig(image_size=32, batch_size=1, steps=STEPS, checkpoint_every=3, decoder_width=16)
    return lambda **kw: train_adain(photos, photos, out, tiny, None if resume else cfg, resume=resume,
                                    resume_steps=STEPS if resume else None, **kw)  # fmt: skip


def gan(data, out, resume=False):
    cfg = config_for(data, steps=STEPS, batch_size=4)
    return lambda **kw: train_gan(data, out, cfg, resume=resume, resume_steps=STEPS if resume else None, **kw)


def engines(request, photos, gan_data, tmp_path):
    from tests.conftest import TinyNet

    tiny = TinyNet().freeze()
    kind = request.param
    if kind == "gan":
        return lambda name, resume=False: gan(
            gan_data, tmp_path / name, resume
        ), lambda n: tmp_path / n / ("checkpoint.safetensors")
    make = {"fast": fast, "adain": adain}[kind]
    return lambda name, resume=False: make(
        photos, tiny, tmp_path / f"{name}.safetensors", resume
    ), lambda n: tmp_path / f"{n}.safetensors"


@pytest.fixture(params=["fast", "adain", "gan"])
def trainer(request, photos, gan_data, tmp_path):
    return engines(request, photos, gan_data, tmp_path)


def interrupt_after_optimizer_steps(monkeypatch, count: int, how: str) -> None:
    """Ctrl-C after the ``count``-th optimiser update, in the middle of a step (a GAN step has two)."""
    original = torch.optim.Adam.step
    calls = {"n": 0}

    def step(self, *args, **kwargs):
        result = original(self, *args, **kwargs)
        calls["n"] += 1
        if calls["n"] == count:
            if how == "signal":  # a real Ctrl-C: the step under way finishes, the loop stops after it
                os.kill(os.getpid(), signal.SIGINT)
            else:  # raised inside the step: the half-done step is dropped, the last checkpoint stays
                raise KeyboardInterrupt
        return result

    monkeypatch.setattr(torch.optim.Adam, "step", step)


@pytest.mark.parametrize("how", ["on_step", "signal", "raised"])
def test_interrupt_then_resume_is_exact(trainer, how, monkeypatch, capsys):
    run, checkpoint = trainer
    run("straight")()

    def stop_at_2(step):
        if step.step == 2:
            raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        if how != "on_step":
            interrupt_after_optimizer_steps(patch, 5, how)  # inside step 5 (fast, adain) or step 3 (gan)
        with pytest.raises(KeyboardInterrupt):
            run("halves")(on_step=stop_at_2 if how == "on_step" else None)
    if how == "signal":
        assert INTERRUPT_NOTE in capsys.readouterr().err  # the user learns why the step still runs
    run("halves", resume=True)()
    a, b = load_file(checkpoint("straight")), load_file(checkpoint("halves"))
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"{len(different)} of {len(a)} tensors differ, e.g. {different[:3]}"


def test_killed_runs_leave_no_temp_files(tmp_path):
    target = tmp_path / "m.safetensors"
    stale = [tmp_path / ".m.safetensors.999999999.abcd_123.tmp", tmp_path / ".m.safetensors.k2j4h5g6.tmp"]
    alive = tmp_path / f".m.safetensors.{os.getppid()}.abcdefgh.tmp"  # a live process's write in progress
    unrelated = [tmp_path / ".m.safetensors.notes.tmp", tmp_path / ".other.png.abcdefgh.tmp", tmp_path / "m.tmp"]
    for path in [*stale, alive, *unrelated]:
        path.write_text("x")
    atomic_write(target, lambda tmp: Path(tmp).write_text("new"))
    assert target.read_text() == "new"
    assert not any(p.exists() for p in stale)
    assert alive.exists() and all(p.exists() for p in unrelated)
    assert remove_stale_temps(target) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in [target, alive, *unrelated])


def test_stale_temps_of_every_name_with_a_prefix(tmp_path):
    """A studio job's attempts write differently named files: a killed one's temp goes when the job ends."""
    dead = tmp_path / ".job1-aaaa1111-0.mp4.999999999.abcdefgh.tmp"
    live = tmp_path / f".job1-bbbb2222-0.mp4.{os.getppid()}.abcdefgh.tmp"
    other_job = tmp_path / ".job2-cccc3333-0.mp4.999999999.abcdefgh.tmp"
    for path in (dead, live, other_job):
        path.write_text("x")
    assert remove_stale_temps(tmp_path / "job1-", prefix=True) == [dead]
    assert live.exists() and other_job.exists()


def test_a_kill_between_the_two_checkpoint_files_resumes_the_tensors_step(tmp_path, monkeypatch):
    from brushwork.checkpoints import load_checkpoint, save_checkpoint

    path = tmp_path / "m.safetensors"
    save_checkpoint(path, {"w": torch.zeros(1)}, {"kind": "x", "step": 1})
    json_before = (tmp_path / "m.json").read_text()
    save_checkpoint(path, {"w": torch.ones(1)}, {"kind": "x", "step": 2})
    (tmp_path / "m.json").write_text(json_before)  # as if killed after the tensors, before the JSON
    tensors, meta = load_checkpoint(path, "x")
    assert meta["step"] == 2 and tensors["w"].item() == 1


def test_resume_steps_is_the_total_on_every_trainer(trainer, monkeypatch):
    """One rule for fast, adain and gan: a resumed run's --steps is the new total, counted from the first
    step, lower or higher than the stored target; a checkpoint already there is refused in words."""
    import tests.test_training as me

    run, _ = trainer

    def stop_at_2(step):
        if step.step == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run("cut")(on_step=stop_at_2)  # stored target: STEPS (6)
    monkeypatch.setattr(me, "STEPS", 3)
    seen = []
    run("cut", resume=True)(on_step=lambda step: seen.append(step.step))
    assert seen == [3], seen  # stopped at the new total, not the stored 6
    with pytest.raises(BrushworkError, match="already trained for 3 steps and --steps 3 is the total"):
        run("cut", resume=True)()
    monkeypatch.setattr(me, "STEPS", 4)
    seen.clear()
    run("cut", resume=True)(on_step=lambda step: seen.append(step.step))
    assert seen == [4], seen


@pytest.mark.parametrize("verb", ["fast", "adain", "gan"])
def test_the_steps_rule_is_in_every_trainers_help(verb, capsys):
    from brushwork.cli import main

    with pytest.raises(SystemExit):
        main([verb, "train", "--help"])
    assert "with --resume the new total" in " ".join(capsys.readouterr().out.split())
