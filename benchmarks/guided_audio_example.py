"""Audio-reactive video on a synthetic clip and song: flicker with and without the sound driving the style.

The clip is a slow pan over the bundled Tübingen photo; the song is sine bursts on a 120 BPM beat that
get louder and brighter. Prints the flicker (output change / source change, as `brushwork video`) of a
plain run and of each reactive mode, and writes docs/audio-reactive-strip.jpg: frames of the reactive
AdaIN run (strength + blend of Starry Night and Shipwreck) over the loudness curve.

    python benchmarks/guided_audio_example.py
"""

from __future__ import annotations

import tempfile
import time
import wave
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image, ImageDraw

from brushwork import api
from brushwork.style.audio import AudioDrive
from brushwork.style.video import read_frames

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "brushwork" / "examples"
FPS, SECONDS, RATE = 12, 4, 22050


def make_clip(path: Path) -> None:
    photo = Image.open(EXAMPLES / "tubingen.jpg").convert("RGB").resize((384, 288))
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = 256, 192, "yuv420p"
        for i in range(FPS * SECONDS):
            x = round(i * (384 - 256) / (FPS * SECONDS - 1))
            frame = av.VideoFrame.from_image(photo.crop((x, 48, x + 256, 240)))
            frame.pts, frame.time_base = i, Fraction(1, FPS)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))


def make_song(path: Path) -> None:
    t = np.arange(SECONDS * RATE) / RATE
    since_beat = t % 0.5
    freq = 220 * 2 ** (3 * t / SECONDS)  # 220 Hz -> 1760 Hz: brighter as it goes
    louder = 0.15 + 0.8 * t / SECONDS
    sound = louder * np.sin(2 * np.pi * np.cumsum(freq) / RATE) * np.exp(-since_beat / 0.12)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(RATE)
        w.writeframes((np.clip(sound, -1, 1) * 32767).astype("<i2").tobytes())


def main() -> None:
    tmp = Path(tempfile.mkdtemp())
    clip, song = tmp / "clip.mp4", tmp / "song.wav"
    make_clip(clip)
    make_song(song)
    fast = api.load_model(EXAMPLES / "starry_night-fast.safetensors")
    adain = api.load_model(EXAMPLES / "adain-lite0.safetensors")
    styles = [EXAMPLES / "starry_night.jpg", EXAMPLES / "shipwreck.jpg"]
    runs = [
        ("fast, plain", fast, None, None),
        ("fast, strength", fast, None, ["strength"]),
        ("fast, scale", fast, None, ["scale"]),
        ("adain, plain", adain, styles, None),
        ("adain, strength+blend", adain, styles, ["strength", "blend"]),
    ]
    for name, model, style_paths, modes in runs:
        out = tmp / f"{name.replace(', ', '-').replace('+', '-')}.mp4"
        start = time.perf_counter()
        report = api.stylize_video(clip, out, model=model, styles=style_paths, audio_reactive=modes,
                                   audio=song if modes else None)  # fmt: skip
        tempo = report.record.parameters.get("audio_analysis", {}).get("tempo_bpm")
        tempo = f", tempo {tempo} BPM" if tempo else ""
        print(f"{name:24s} flicker {report.flicker:.3f}x the source's  "
              f"({report.frames} frames, {time.perf_counter() - start:.1f} s{tempo})")  # fmt: skip
    drive = AudioDrive.from_file(song, ["strength", "blend"])
    frames = read_frames(out)
    picks = np.linspace(0, len(frames) - 1, 8).round().astype(int)
    strip = Image.new("RGB", (8 * 128, 96 + 40), "white")
    draw = ImageDraw.Draw(strip)
    for k, i in enumerate(picks):
        strip.paste(frames[i].resize((128, 96)), (k * 128, 0))
        s = drive.at(i / FPS)
        draw.rectangle((k * 128 + 4, 100, k * 128 + 4 + round(s.strength * 118), 110), fill=(200, 60, 40))
        draw.rectangle((k * 128 + 4, 116, k * 128 + 4 + round(s.blend * 118), 126), fill=(40, 80, 200))
    strip.save(ROOT / "docs" / "audio-reactive-strip.jpg", quality=88)


if __name__ == "__main__":
    main()
