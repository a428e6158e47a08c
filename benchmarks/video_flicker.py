"""Frames/s and flicker of video stylisation, with and without stabilisation.

    python benchmarks/video_flicker.py [--model M.safetensors] [--frames 48] [--size 320x240]

The clip is made here: a window panning slowly across the bundled Tübingen photo (a camera pan over
a still scene), 24 frames/s, H.264. Flicker = the output's mean frame-to-frame change / the
source's; 1.0 means the stylisation adds none. Temporal error = the output's mean change along the
source's optical flow (what moves with the scene is not counted; lower is steadier). Stabilisation
is run plain (blend where the source stands still) and with optical-flow warping.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from fractions import Fraction
from pathlib import Path

import numpy as np

from brushwork.judge.temporal import measure_temporal_error
from brushwork.media import load_image
from brushwork.style.feedforward import apply_feedforward, load_feedforward
from brushwork.style.video import stylize_video

EXAMPLES = Path(__file__).resolve().parents[1] / "brushwork" / "examples"


def make_pan(path: Path, frames: int, width: int, height: int) -> Path:
    import av

    photo = load_image(EXAMPLES / "tubingen.jpg")
    scale = height * 1.2 / photo.height
    photo = photo.resize((round(photo.width * scale), round(photo.height * scale)))
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": "16"}
        for i in range(frames):
            x = round(i * (photo.width - width) / max(1, frames - 1))
            frame = av.VideoFrame.from_ndarray(np.asarray(photo.crop((x, 10, x + width, 10 + height))), "rgb24")
            frame.pts, frame.time_base = i, Fraction(1, 24)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(EXAMPLES / "starry_night-fast.safetensors"))
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--size", default="320x240")
    parser.add_argument("--keep", help="folder to keep the clips in")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    net, _ = load_feedforward(args.model)
    folder = Path(args.keep or tempfile.mkdtemp())
    folder.mkdir(parents=True, exist_ok=True)
    src = make_pan(folder / "pan.mp4", args.frames, width, height)
    for stabilise, flow in ((0.0, False), (0.5, False), (0.8, False), (0.5, True), (0.8, True)):
        out = folder / f"pan-stylised-{stabilise}{'-flow' if flow else ''}.mp4"
        out.unlink(missing_ok=True)
        report = stylize_video(src, out, lambda im: apply_feedforward(net, [im])[0], stabilise, flow)
        rate = round(report.frames / report.seconds, 1)
        print(json.dumps({"model": Path(args.model).name, "size": args.size, "frames": report.frames,
                          "stabilise": stabilise, "flow": flow, "frames_per_s": rate,
                          "flicker": round(report.flicker, 3),
                          "temporal_error": round(measure_temporal_error(src, out), 4)}), flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
