import math
from fractions import Fraction

import numpy as np
import pytest
import torch

from brushwork.cli import main
from brushwork.judge.temporal import measure_flicker
from brushwork.style.video import FlickerMeter, Stabiliser, read_frames, stylize_video

av = pytest.importorskip("av")


def make_video(path, frames=12, size=(66, 50), audio=True):
    """A square sliding over a still background, with one second of a 440 Hz tone."""
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=12)
        video.width, video.height, video.pix_fmt = size[0], size[1], "yuv420p"
        if audio:
            sound = out.add_stream("aac", rate=16000)
            sound.layout = "mono"
        for i in range(frames):
            arr = np.full((size[1], size[0], 3), 90, np.uint8)
            arr[10:30, 4 + 3 * i : 24 + 3 * i] = (240, 200, 40)
            frame = av.VideoFrame.from_ndarray(arr, format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, 12)
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        if audio:
            t = np.arange(16000) / 16000
            samples = (0.3 * np.sin(2 * math.pi * 440 * t)).astype(np.float32)[None, :]
            for j in range(0, 16000, 1024):
                frame = av.AudioFrame.from_ndarray(samples[:, j : j + 1024], format="fltp", layout="mono")
                frame.sample_rate, frame.pts, frame.time_base = 16000, j, Fraction(1, 16000)
                out.mux(sound.encode(frame))
            out.mux(sound.encode(None))
    return path


def noisy(strength):
    """A stand-in engine that flickers: adds fresh noise to every frame."""
    gen = torch.Generator().manual_seed(0)

    def stylise(img):
        from brushwork.media import image_to_tensor, tensor_to_image

        x = image_to_tensor(img)
        return tensor_to_image((x + strength * (torch.rand(x.shape, generator=gen) - 0.5)).clamp(0, 1))

    return stylise


def test_frames_and_audio_kept(tmp_path):
    src = make_video(tmp_path / "in.mp4")
    report = stylize_video(src, tmp_path / "out.mp4", noisy(0.3), stabilise=0.0)
    assert report.frames == 12 and report.audio_streams == 1
    with av.open(str(tmp_path / "out.mp4")) as out:
        assert len(out.streams.audio) == 1
        assert out.streams.video[0].width == 66 and out.streams.video[0].height == 50
    assert len(read_frames(tmp_path / "out.mp4")) == 12
    assert not list(tmp_path.glob(".out*"))


def test_stabilising_cuts_flicker(tmp_path):
    src = make_video(tmp_path / "in.mp4", audio=False)
    raw = stylize_video(src, tmp_path / "raw.mp4", noisy(0.3), stabilise=0.0)
    steady = stylize_video(src, tmp_path / "steady.mp4", noisy(0.3), stabilise=0.8)
    assert steady.flicker < 0.6 * raw.flicker
    # Measured again from the encoded files (H.264 smooths some noise away), the order still holds.
    assert measure_flicker(src, tmp_path / "steady.mp4") < 0.6 * measure_flicker(src, tmp_path / "raw.mp4")


def test_stabiliser_follows_motion():
    stab = Stabiliser(0.9)
    still, moved = torch.zeros(1, 3, 4, 4), torch.ones(1, 3, 4, 4)
    stab(still, torch.zeros(1, 3, 4, 4))
    # The source changed everywhere: the new stylised frame is taken almost as it is.
    assert stab(moved, torch.ones(1, 3, 4, 4)).mean() > 0.99
    meter = FlickerMeter()
    meter.add(still, still)
    meter.add(moved, moved * 0.5)
    assert meter.ratio == pytest.approx(0.5)


def test_cli_video(tmp_path, capsys):
    from brushwork.cli import EXAMPLES

    src = make_video(tmp_path / "in.mp4", frames=6)
    out = tmp_path / "out.mp4"
    model = str(EXAMPLES / "starry_night-fast.safetensors")
    assert main(["video", str(src), "--model", model, "-o", str(out), "-q"]) == 0
    assert "6 frames, 1 audio stream(s) kept" in capsys.readouterr().out
    assert main(["video", str(src), "--model", model, "-o", str(out), "-q"]) == 2  # exists
    (tmp_path / "bad.mp4").write_bytes(b"junk")
    assert main(["video", str(tmp_path / "bad.mp4"), "--model", model, "-o", str(tmp_path / "o.mp4"), "-q"]) == 2
    assert main(["video", str(src), "--model", model, "-o", str(tmp_path / "o.avi"), "-q"]) == 2
    err = capsys.readouterr().err
    assert "not a video" in err and ".mp4" in err and "Traceback" not in err
    assert not (tmp_path / "o.mp4").exists()


def test_flow_stabiliser_steadies_moving_areas():
    """A textured scene panning 2 px a frame, stylised with fresh noise each frame. Temporal error is measured
    along the known motion (out_t against out_t-1 moved by 2 px): blending only where the source stands still
    cannot lower it; warping the previous output along the flow does."""
    gen = torch.Generator().manual_seed(0)
    scene = torch.nn.functional.avg_pool2d(torch.rand(1, 3, 96, 160, generator=gen), 5, 1, 2)
    scene = (scene - scene.min()) / (scene.max() - scene.min())
    errors = {}
    for flow in (False, True):
        stab, previous, error = Stabiliser(0.8, flow=flow), None, []
        for t in range(10):
            src = scene[..., 2 * t : 2 * t + 64, 10 : 10 + 96].contiguous()
            out = stab(src, (src + 0.15 * torch.randn(src.shape, generator=gen)).clamp(0, 1))
            if previous is not None:
                error.append((out[..., 4:-6, 4:-4] - previous[..., 6:-4, 4:-4]).abs().mean().item())
            previous = out
        errors[flow] = sum(error[3:]) / len(error[3:])  # after the blend has settled
    assert errors[True] < 0.6 * errors[False], errors
