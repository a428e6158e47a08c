"""What a hostile or careless user tries: each ends in one line (`brushwork: error: ...`, exit 2) or
works, and nothing is lost or half-written."""

import errno
import json
import math
import os
import shutil

import pytest
import torch
from PIL import Image

from brushwork.checkpoints import meta_path
from brushwork.cli import main
from brushwork.errors import BrushworkError
from brushwork.files import all_or_nothing_folder, atomic_write, check_output_path, readable_file
from brushwork.gan import sample as gs
from brushwork.gan.data import load_dataset
from brushwork.gan.model import GanConfig, load_run, read_options
from brushwork.gan.train import prepare_run_folder, train_gan
from brushwork.media import load_image
from brushwork.style.adain import AdainConfig, apply_adain, load_adain, train_adain
from brushwork.style.feedforward import FastConfig, apply_feedforward, load_feedforward, train_feedforward
from brushwork.style.gatys import StyleConfig
from brushwork.training import ImageFolder, run_training
from tests.conftest import TinyNet, make_image
from tests.test_gan import config_for, write_classes


def one_line_error(capsys, *fragments: str) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert "Traceback" not in err and err.count("brushwork: error:") == 1, err
    assert lines and lines[-1].startswith("brushwork: error:"), err  # the error is one line, the last
    for fragment in fragments:
        assert fragment in err, err
    return err


@pytest.fixture(scope="module")
def gan_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("gan")
    data = load_dataset(str(write_classes(root / "d", per_class=3)), conditional=True)
    train_gan(data, root / "run", config_for(data, steps=1, batch_size=4))
    return root / "run"


@pytest.fixture(scope="module")
def style_models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    (root / "photos").mkdir()
    for i in range(2):
        make_image(40, 36, seed=i, kind="noise").save(root / "photos" / f"p{i}.png")
    tiny = TinyNet().freeze()
    fast = FastConfig(width=4, residual_blocks=1, image_size=32, batch_size=1, steps=1)
    train_feedforward(make_image(40, 40, 1, "stripes"), root / "photos", root / "fast.safetensors", tiny, fast)
    adain = AdainConfig(image_size=32, batch_size=1, steps=1, decoder_width=16)
    train_adain(root / "photos", root / "photos", root / "adain.safetensors", tiny, adain)
    return root


def copy_run(run, tmp_path):
    target = tmp_path / "run"
    shutil.copytree(run, target)
    return target


# --- data loss -------------------------------------------------------------------------------------


def test_force_removes_only_what_a_run_wrote(gan_run, tmp_path):
    run = copy_run(gan_run, tmp_path)
    (run / "thesis.txt").write_text("years of work")
    (run / "samples" / "mine.png").write_bytes(b"x")
    with pytest.raises(BrushworkError, match="--resume to continue it or --force"):
        prepare_run_folder(run, tmp_path / "data")
    prepare_run_folder(run, tmp_path / "data", force=True)
    assert sorted(p.name for p in run.rglob("*")) == ["mine.png", "samples", "thesis.txt"]
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("x")
    with pytest.raises(BrushworkError, match="not empty"):
        prepare_run_folder(other, tmp_path / "data")


def test_run_folder_never_the_data_or_inside_it(tmp_path, capsys):
    data = write_classes(tmp_path / "d", per_class=2)
    before = sorted(data.rglob("*"))
    for out in (data, data / "dark", data / "runs"):
        assert main(["gan", "train", str(data), "--out", str(out), "--force", "--steps", "1", "-q"]) == 2
        one_line_error(capsys, "must not be the data folder or inside it")
    assert sorted(data.rglob("*")) == before
    (tmp_path / "f.txt").write_text("x")
    assert main(["gan", "train", str(data), "--out", str(tmp_path / "f.txt"), "-q"]) == 2
    one_line_error(capsys, "is a file")


def test_class_names_never_become_paths_outside(gan_run, tmp_path, capsys):
    for name in ("../../../../tmp/x", "/tmp/abs", "..", "a/b"):
        run = copy_run(gan_run, tmp_path / name.replace("/", "_"))
        meta = json.loads((run / "checkpoint.json").read_text())
        meta["data"]["classes"][0] = name
        (run / "checkpoint.json").write_text(json.dumps(meta))
        with pytest.raises(BrushworkError, match="cannot be a folder name"):
            load_run(run)
        assert main(["gan", "sample", str(run), "--seeds", "0", "-o", str(tmp_path / "out")]) == 2
        one_line_error(capsys, "cannot be a folder name")
    assert not (tmp_path / "out").exists()


def test_model_settings_are_not_overwritten(tmp_path):
    (tmp_path / "m.json").write_text("my notes")
    with pytest.raises(BrushworkError, match="m.json: already exists"):
        check_output_path(tmp_path / "m.safetensors", suffix=".safetensors")
    check_output_path(tmp_path / "m.safetensors", force=True, suffix=".safetensors")


def test_two_inputs_with_one_output_name(style_models, tmp_path, capsys):
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        make_image(20, 20).save(tmp_path / folder / "x.png")
    model = style_models / "fast.safetensors"
    args = ["fast", "apply", str(model), str(tmp_path / "a" / "x.png"), str(tmp_path / "b" / "x.png")]
    assert main([*args, "--out-dir", str(tmp_path)]) == 2
    one_line_error(capsys, "would both be written")
    assert not list(tmp_path.glob("*.png"))


# --- edited or corrupt files -------------------------------------------------------------------------

BAD_GAN_EDITS = {
    "resolution 4096": lambda m: m["config"].update(resolution=4096),
    "latent -1": lambda m: m["config"].update(latent=-1),
    "width as text": lambda m: m["config"].update(g_width="8"),
    "negative width": lambda m: m["config"].update(d_width=-3),
    "config null": lambda m: m.update(config=None),
    "config missing": lambda m: m.pop("config"),
    "config a list": lambda m: m.update(config=[1, 2]),
}


@pytest.mark.parametrize("edit", [*BAD_GAN_EDITS, "empty object", "bad JSON", "a list"])
def test_edited_gan_run_is_refused_in_one_line(gan_run, tmp_path, edit, capsys):
    run = copy_run(gan_run, tmp_path)
    for name in ("checkpoint.json", "options.json"):
        if edit == "bad JSON":
            (run / name).write_text('{"config": {')
        elif edit in ("empty object", "a list"):
            (run / name).write_text("{}" if edit == "empty object" else "[1]")
        else:
            meta = json.loads((run / name).read_text())
            BAD_GAN_EDITS[edit](meta)
            (run / name).write_text(json.dumps(meta))
    with pytest.raises(BrushworkError):
        load_run(run)
    with pytest.raises(BrushworkError):
        read_options(run)
    for argv in (["sample", "--grid", "-o", str(tmp_path / "g.png")], ["interpolate", "-o", str(tmp_path / "w.gif")],
                 ["evaluate"]):  # fmt: skip
        assert main(["gan", argv[0], str(run), *argv[1:]]) == 2
        one_line_error(capsys)


BAD_MODEL_EDITS = {
    "a list": lambda m: [m],
    "empty object": lambda m: {},
    "config null": lambda m: {**m, "config": None},
    "config missing": lambda m: {k: v for k, v in m.items() if k != "config"},
    "negative width": lambda m: {**m, "config": {**m["config"], "width": -4, "decoder_width": -16}},
    "width as text": lambda m: {**m, "config": {**m["config"], "width": "4", "decoder_width": "16"}},
}


@pytest.mark.parametrize("edit", BAD_MODEL_EDITS)
def test_edited_style_model_is_refused_in_one_line(style_models, tmp_path, edit, capsys):
    photo = tmp_path / "p.png"
    make_image(24, 24).save(photo)
    for kind in ("fast", "adain"):
        model = tmp_path / f"{kind}.safetensors"
        shutil.copy(style_models / f"{kind}.safetensors", model)
        meta = json.loads(meta_path(style_models / f"{kind}.safetensors").read_text())
        edited = BAD_MODEL_EDITS[edit](meta)
        if edit == "empty object" or edit == "a list":
            pass
        meta_path(model).write_text(json.dumps(edited))
        with pytest.raises(BrushworkError):
            load_feedforward(model) if kind == "fast" else load_adain(model, TinyNet().freeze())
        verbs = [["fast", "apply", str(model), str(photo), "-o", str(tmp_path / "o.png")],
                 ["fast", "export", str(model), "-o", str(tmp_path / "o.onnx")],
                 ["video", str(photo), "--model", str(model), "-o", str(tmp_path / "o.mp4")]]  # fmt: skip
        if kind == "adain":
            verbs = [["adain", "apply", str(model), str(photo), "--style", str(photo), "-o", str(tmp_path / "o.png")]]
        for argv in verbs:
            assert main(argv) == 2
            one_line_error(capsys)
    assert not list(tmp_path.glob("o.*"))


def test_pickled_weights_refused_in_one_line(tmp_path):
    from brushwork.backbones.weights import load_state_dict_file

    torch.save({"w": torch.zeros(1), "f": print}, tmp_path / "bad.pth")
    with pytest.raises(BrushworkError) as caught:
        load_state_dict_file(tmp_path / "bad.pth")
    assert "\n" not in str(caught.value) and "pickled" in str(caught.value)


def test_permission_denied_is_not_no_such_file(tmp_path, monkeypatch):
    path = tmp_path / "m.safetensors"
    path.write_bytes(b"x")
    monkeypatch.setattr(os, "access", lambda *a, **k: False)  # as chmod 000 does (tests may run as root)
    with pytest.raises(BrushworkError, match="permission denied"):
        readable_file(path, "model file")
    monkeypatch.undo()
    with pytest.raises(BrushworkError, match="no such model file"):
        readable_file(tmp_path / "none.safetensors", "model file")
    with pytest.raises(BrushworkError, match="is a folder"):
        readable_file(tmp_path, "video file")


def test_unreadable_sub_folder_is_counted(tmp_path, monkeypatch):
    for name in ("open", "locked"):
        (tmp_path / name).mkdir()
        make_image(40, 40).save(tmp_path / name / "a.png")
    real = os.scandir

    def scandir(path="."):
        if str(path).endswith("locked"):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    folder = ImageFolder(tmp_path, 32)
    assert len(folder.paths) == 1 and folder.unreadable == 1 and "locked" in folder.skipped[0]


# --- failing writes: read-only folder, full disk -----------------------------------------------------


def test_write_failures_are_one_line_and_leave_nothing(tmp_path, monkeypatch):
    def full(tmp):
        with open(tmp, "w") as fh:
            fh.write("half")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(BrushworkError, match="disk is full"):
        atomic_write(tmp_path / "a.png", full)
    assert list(tmp_path.iterdir()) == []

    def read_only(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr("tempfile.mkstemp", read_only)
    with pytest.raises(BrushworkError, match="permission denied"):
        atomic_write(tmp_path / "a.png", full)


def fail_after(monkeypatch, target: str, calls: int, exc: BaseException) -> None:
    """Make ``target`` (module.attr) raise ``exc`` from its ``calls``-th call on."""
    module, _, name = target.rpartition(".")
    import importlib

    owner = importlib.import_module(module) if not module.endswith("Image") else Image.Image
    original = getattr(owner, name)
    count = {"n": 0}

    def wrapper(*args, **kwargs):
        count["n"] += 1
        if count["n"] >= calls:
            raise exc
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, wrapper)


@pytest.mark.parametrize(
    "exc, code", [(OSError(errno.ENOSPC, "No space left on device"), 2), (KeyboardInterrupt(), 130)]
)
def test_gan_sample_writes_all_images_or_none(gan_run, tmp_path, monkeypatch, capsys, exc, code):
    fail_after(monkeypatch, "PIL.Image.Image.save", 2, exc)
    out = tmp_path / "out"
    assert main(["gan", "sample", str(gan_run), "--seeds", "0-3", "-o", str(out)]) == code
    assert not out.exists() and list(tmp_path.iterdir()) == []
    if code == 2:
        one_line_error(capsys, "disk is full")


def test_gan_train_on_a_full_disk_leaves_no_half_run(tmp_path, capsys, monkeypatch):
    data = write_classes(tmp_path / "d", per_class=2)
    fail_after(monkeypatch, "brushwork.checkpoints.save_file", 1, OSError(errno.ENOSPC, "No space left on device"))
    run = tmp_path / "run"
    assert main(["gan", "train", str(data), "--out", str(run), "--steps", "2", "--batch-size", "2", "--latent", "8",
                 "--g-width", "4", "--d-width", "4", "--eval-every", "0", "-q"]) == 2  # fmt: skip
    one_line_error(capsys, "disk is full")
    assert not run.exists()


def test_file_where_a_folder_is_expected(gan_run, tmp_path, capsys):
    (tmp_path / "f.png").write_bytes(b"x")
    with pytest.raises(BrushworkError, match="is a file"), all_or_nothing_folder(tmp_path / "f.png"):
        pass
    assert main(["gan", "sample", str(gan_run), "--seeds", "0", "-o", str(tmp_path / "f.png")]) == 2
    one_line_error(capsys, "is a file")
    assert (tmp_path / "f.png").read_bytes() == b"x"


def test_interrupt_during_start_up_and_apply(style_models, tmp_path, monkeypatch, capsys):
    photo = tmp_path / "p.png"
    make_image(24, 24).save(photo)
    fail_after(monkeypatch, "brushwork.style.feedforward.load_feedforward", 1, KeyboardInterrupt())
    out = tmp_path / "o.png"
    assert main(["fast", "apply", str(style_models / "fast.safetensors"), str(photo), "-o", str(out)]) == 130
    monkeypatch.undo()
    fail_after(monkeypatch, "PIL.Image.Image.save", 1, KeyboardInterrupt())
    assert main(["fast", "apply", str(style_models / "fast.safetensors"), str(photo), "-o", str(out)]) == 130
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.png"]


# --- numbers out of range ----------------------------------------------------------------------------


def test_seeds_and_sizes_out_of_range():
    for config in (GanConfig(seed=10**30), FastConfig(seed=10**30), AdainConfig(seed=-1)):
        with pytest.raises(BrushworkError, match="seed"):
            config.validate()
    with pytest.raises(BrushworkError, match="seed"):
        StyleConfig(seed=10**30).validate(1)
    for text in ("0-99999999999", f"{2**64}", f"{2**63}-{2**63 + 1}", "5-3"):
        with pytest.raises(BrushworkError, match="seed"):
            gs.parse_seeds(text)
    assert gs.parse_seeds(f"{2**63 - 1}") == [2**63 - 1]
    for field in ({"g_width": 0}, {"d_width": 0}, {"latent": -1}, {"latent": 0}, {"lr_g": math.inf},
                  {"lr_d": math.nan}, {"ema": math.nan}):  # fmt: skip
        with pytest.raises(BrushworkError):
            GanConfig(**field).validate()
    with pytest.raises(BrushworkError, match="fine iterations"):
        StyleConfig(fine_iterations=-1).validate(1)
    for weights in ([math.nan], [math.inf], [-1.0], [0.0]):
        with pytest.raises(BrushworkError, match="weights"):
            StyleConfig(style_blend=weights).validate(1)
    with pytest.raises(BrushworkError, match="max pixels"):
        load_image("whatever.png", max_pixels=0)


@pytest.mark.parametrize("truncation", [1e-30, math.nan, math.inf, 0.0, -1.0])
def test_truncation_that_would_hang_or_paint_garbage(gan_run, truncation, tmp_path, capsys):
    g, cfg, _ = load_run(gan_run)
    with pytest.raises(BrushworkError, match="truncation"):
        gs.generate(g, cfg, [0], 0, truncation)
    argv = ["gan", "sample", str(gan_run), "--grid", "--truncation", str(truncation), "-o", str(tmp_path / "g.png")]
    assert main(argv) == 2
    one_line_error(capsys, "truncation")


def test_style_model_sizes_and_weights(style_models):
    net, _ = load_feedforward(style_models / "fast.safetensors")
    photo = make_image(24, 24)
    for size in (0, -5, 20000):
        with pytest.raises(BrushworkError, match="image size"):
            apply_feedforward(net, [photo], image_size=size)
    model = load_adain(style_models / "adain.safetensors", TinyNet().freeze())
    for size in (-5, 0, 1):
        with pytest.raises(BrushworkError, match="style size"):
            apply_adain(model, [photo], [photo], style_size=size)[0]
    for weights in ([math.nan, 1.0], [math.inf, 1.0], [0.0, 0.0]):
        with pytest.raises(BrushworkError, match="weights"):
            apply_adain(model, [photo], [photo, photo], weights)[0]
    with pytest.raises(BrushworkError, match="alpha"):
        apply_adain(model, [photo], [photo], alpha=math.nan)[0]


def test_non_finite_losses_stop_training():
    saved = []
    losses = iter([1.0, 2.0, math.inf])
    with pytest.raises(BrushworkError, match="diverged at step 3.*step 2"):
        run_training(lambda: {"loss": torch.tensor(next(losses))}, 0, 10, lambda s, f: saved.append(s), 2)
    assert saved == [0, 2]


def test_gan_learning_rate_inf_is_refused(tmp_path, capsys):
    data = write_classes(tmp_path / "d", per_class=2)
    assert main(["gan", "train", str(data), "--out", str(tmp_path / "run"), "--lr-g", "inf", "-q"]) == 2
    one_line_error(capsys, "lr_g: expected a finite number")  # the settings refuse it, as the studio does
    assert not (tmp_path / "run").exists()


def test_resume_with_another_architecture_names_the_stored_value(gan_run, tmp_path):
    run = copy_run(gan_run, tmp_path)
    data = load_dataset(str(write_classes(tmp_path / "d", per_class=3)), conditional=True)
    cfg = config_for(data, steps=2, batch_size=4, g_width=16)
    with pytest.raises(BrushworkError, match="g-width 8, not 16"):
        train_gan(data, run, cfg, resume=True, resume_steps=2)


def test_crf_and_video_inputs(tmp_path, capsys, style_models):
    pytest.importorskip("av")
    from brushwork.style.video import stylize_video, write_frames

    for crf in (-5, 100):
        with pytest.raises(BrushworkError, match="crf"):
            stylize_video(tmp_path / "in.mp4", tmp_path / "o.mp4", lambda f: f, crf=crf)
    with pytest.raises(BrushworkError, match="is a folder"):
        stylize_video(tmp_path, tmp_path / "o.mp4", lambda f: f)
    clip = tmp_path / "in.mp4"
    write_frames([make_image(32, 32, seed=i, kind="noise") for i in range(12)], clip)
    data = bytearray(clip.read_bytes())
    start = data.find(b"mdat") + 64
    data[start : start + 2000] = os.urandom(2000)  # packets that do not decode
    clip.write_bytes(bytes(data))
    model = str(style_models / "fast.safetensors")
    code = main(["video", str(clip), "--model", model, "-o", str(tmp_path / "o.mp4"), "-q"])
    err = capsys.readouterr().err
    assert "Traceback" not in err and (code == 0 or (code == 2 and "brushwork: error:" in err))


# --- ONNX export of AdaIN models ----------------------------------------------------------------------


def test_same_padding_is_tensorflows_without_symbolic_blowup():
    from brushwork.backbones.lite0 import same_padding

    for size in range(1, 40):
        for kernel in (1, 2, 3, 5):
            for stride in (1, 2, 3):
                expected = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
                assert same_padding(size, kernel, stride) == expected, (size, kernel, stride)


def test_adain_export_matches_at_sizes_off_the_stride(style_models, tmp_path):
    pytest.importorskip("onnxscript")
    pytest.importorskip("onnxruntime")
    from brushwork.style.export import export_onnx, max_difference

    model = load_adain(style_models / "adain.safetensors", TinyNet().freeze())
    export_onnx(model, tmp_path / "m.onnx", (torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 64)), ["content", "style"])
    # 31 x 45 is no multiple of the encoder's stride: the decoder's output is resized back, in the graph too.
    inputs = {"content": torch.rand(1, 3, 31, 45), "style": torch.rand(1, 3, 27, 33)}
    assert max_difference(model, tmp_path / "m.onnx", inputs) < 1e-4


def test_interrupt_while_the_command_starts(tmp_path):
    import subprocess
    import sys

    # Ctrl-C just as torch starts loading (it takes seconds; a verb that needs it loads it as it starts).
    code = ("import os, signal, sys\n"
            "class Interrupt:\n"
            "    def find_spec(self, name, *args):\n"
            "        if name == 'torch':\n"
            "            os.kill(os.getpid(), signal.SIGINT)\n"
            "sys.meta_path.insert(0, Interrupt())\n"
            "sys.argv = ['brushwork', 'stylize', '--help']\n"
            "from brushwork.cli import main; sys.exit(main())")  # fmt: skip
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          cwd=tmp_path, env={**os.environ, "PYTHONPATH": os.getcwd()})  # fmt: skip
    assert proc.returncode == 130 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.strip() == "brushwork: interrupted"
    assert proc.stdout == ""  # interrupted before the help was printed


def test_read_only_run_folder_and_max_pixels_on_every_verb(tmp_path, monkeypatch, capsys):
    from pathlib import Path

    data = write_classes(tmp_path / "d", per_class=2)

    def refuse(self, *args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", str(self))

    monkeypatch.setattr(Path, "mkdir", refuse)  # a read-only parent folder (tests may run as root)
    assert main(["gan", "train", str(data), "--out", str(tmp_path / "run"), "--steps", "1", "-q"]) == 2
    one_line_error(capsys, "permission denied")
    monkeypatch.undo()
    for verb in (["video", "in.mp4", "--model", "m.safetensors"], ["fast", "apply", "m.safetensors", "p.png"]):
        with pytest.raises(SystemExit) as caught:
            main([*verb, "--max-pixels", "0", "-o", str(tmp_path / "o.mp4")])
        assert caught.value.code == 2 and "--max-pixels: must be at least 1" in capsys.readouterr().err


def test_a_failed_batch_removes_only_what_it_wrote(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "earlier.png").write_text("kept")
    with pytest.raises(KeyboardInterrupt), all_or_nothing_folder(out, force=True) as folder:
        (folder / "a").mkdir()
        (folder / "a" / "seed00000.png").write_text("new")
        raise KeyboardInterrupt
    assert sorted(p.name for p in out.rglob("*")) == ["earlier.png"]
