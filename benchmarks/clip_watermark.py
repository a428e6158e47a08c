"""The watermark on clips: seconds per frame, and how many frames still carry the work ID once encoded.

A camera pans over the bundled Tübingen photo; the bundled Starry Night model paints each frame (no
protection); then the frames are marked as ``brushwork video`` and GAN walks mark them
(``clips.ClipMarker``: the ID chosen for the clip, each frame starting from the previous frame's
strength) and written as H.264 MP4 at several CRFs and as GIF. Prints, per frame size: the seconds per
frame for marking (the first frame, which searches, apart) and for painting, the PSNR of the mark,
and for several work IDs how many frames read back after encoding, with the write-time check made on
the frame as stored (the default: a JPEG-90 4:2:0 stand-in for H.264, the exact palette for GIF) and
without it (the check on the uncompressed frame, as for a still). Also: false IDs on the unmarked
frames, per frame and per clip (verify needs two frames to agree).

    PYTHONPATH=. python benchmarks/clip_watermark.py [--frames 8] [--ids 3]
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image

from brushwork import api
from brushwork.media import require_av
from brushwork.output import gif_frame
from brushwork.protect import watermark
from brushwork.protect.clips import ClipMarker, as_stored, detect_clip
from brushwork.style.video import read_frames, write_frames

EXAMPLES = Path(api.__file__).parent / "examples"
SIZES = ((160, 128), (256, 192), (512, 384))
CRFS = (18, 23, 28)


def painted_frames(size: tuple[int, int], frames: int, folder: Path) -> tuple[list[Image.Image], float]:
    """The bundled model's painting of a pan over the photo, unprotected, as the engine hands it over;
    and the seconds per frame it took."""
    av = require_av()
    photo = Image.open(EXAMPLES / "tubingen.jpg").convert("RGB").resize((size[0] + 4 * frames, size[1]))
    source = folder / f"pan{size[0]}.mp4"
    with av.open(str(source), "w") as out:
        stream = out.add_stream("libx264", rate=12)
        stream.width, stream.height, stream.pix_fmt, stream.options = size[0], size[1], "yuv420p", {"crf": "10"}
        for i in range(frames):
            frame = av.VideoFrame.from_image(photo.crop((4 * i, 0, 4 * i + size[0], size[1])))
            frame.pts, frame.time_base = i, Fraction(1, 12)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    model = api.load_model(EXAMPLES / "starry_night-fast.safetensors")
    start = time.perf_counter()
    painted = [api.fast_apply(model, frame) for frame in read_frames(source)]
    return painted, (time.perf_counter() - start) / frames


def psnr(a: Image.Image, b: Image.Image) -> float:
    diff = np.asarray(a, np.float64) - np.asarray(b, np.float64)
    return float(10 * np.log10(255**2 / max(1e-12, (diff**2).mean())))


def mark(frames: list[Image.Image], work_id: int, survive) -> tuple[list[Image.Image], float, float, int]:
    marker = ClipMarker(work_id, survive)
    marked, times = [], []
    for frame in frames:
        start = time.perf_counter()
        marked.append(marker(frame))
        times.append(time.perf_counter() - start)
    return marked, times[0], float(np.mean(times[1:])), marker.read_back


def reads(path: Path, work_id: int) -> int:
    frames = read_frames(path) if path.suffix == ".mp4" else _gif_frames(path)
    return sum(watermark.detect(frame).work_id == work_id for frame in frames)


def _gif_frames(path: Path) -> list[Image.Image]:
    with Image.open(path) as gif:
        out = []
        for i in range(gif.n_frames):
            gif.seek(i)
            out.append(gif.convert("RGB"))
        return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--ids", type=int, default=3)
    args = parser.parse_args()
    rng = random.Random(0)
    ids = [rng.randint(1, watermark.MAX_WORK_ID) for _ in range(args.ids)]
    folder = Path(tempfile.mkdtemp(prefix="clip-watermark-"))
    print(f"{args.frames} frames per clip, work IDs {ids}")
    clean_frames, clean_clips, false_frames, false_clips = 0, 0, 0, 0
    for size in SIZES:
        frames, paint_s = painted_frames(size, args.frames, folder)
        clean = [watermark.detect(f).work_id for f in frames]
        clean_frames += len(clean)
        false_frames += sum(i is not None for i in clean)
        clean_clips += 1
        false_clips += detect_clip(frames).work_id is not None
        print(f"\n{size[0]}x{size[1]}: painting {paint_s:.3f} s/frame")
        for label, survive in (("as stored (default)", as_stored("x.mp4")), ("uncompressed check", None)):
            firsts, rests, psnrs, counts = [], [], [], {crf: [] for crf in CRFS}
            for work_id in ids:
                marked, first, rest, _ = mark(frames, work_id, survive)
                firsts.append(first)
                rests.append(rest)
                psnrs.append(np.mean([psnr(a, b) for a, b in zip(marked, frames, strict=True)]))
                for crf in CRFS:
                    path = folder / f"m{size[0]}-{crf}.mp4"
                    write_frames(marked, path, fps=12, crf=crf)
                    counts[crf].append(reads(path, work_id))
            read_text = ", ".join(f"CRF {crf}: {sum(c)}/{len(c) * args.frames}" for crf, c in counts.items())
            print(f"  MP4, check {label}: mark {np.mean(firsts):.2f} s first frame, {np.mean(rests):.2f} s/frame "
                  f"after; PSNR {np.mean(psnrs):.1f} dB; frames read after encoding: {read_text}")  # fmt: skip
        if size == (256, 192):
            firsts, rests, counts = [], [], []
            for work_id in ids:
                marked, first, rest, _ = mark(frames, work_id, as_stored("x.gif"))
                firsts.append(first)
                rests.append(rest)
                path = folder / "m.gif"
                gif = [gif_frame(f) for f in marked]
                gif[0].save(path, save_all=True, append_images=gif[1:], duration=40, loop=0)
                counts.append(reads(path, work_id))
            print(f"  GIF, check as stored: mark {np.mean(firsts):.2f} s first frame, {np.mean(rests):.2f} s/frame "
                  f"after; frames read: {sum(counts)}/{len(counts) * args.frames}")  # fmt: skip
    print(f"\nunmarked painted frames: {false_frames}/{clean_frames} false IDs per frame, "
          f"{false_clips}/{clean_clips} per clip (two frames must agree)")  # fmt: skip


if __name__ == "__main__":
    main()
