"""Moving outputs leave protected too: every frame of a stylised video or a GAN walk (MP4, GIF) carries the
clip's work ID, the file is C2PA-signed and registered, and ``verify`` tells intact, modified and foreign clips
apart."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest
from PIL import Image

pytest.importorskip("imwatermark")
pytest.importorskip("c2pa")
av = pytest.importorskip("av")

from brushwork import api  # noqa: E402
from brushwork.cli import main  # noqa: E402
from brushwork.errors import BrushworkError  # noqa: E402
from brushwork.protect import Protection, Registry, init_keys, verify, watermark  # noqa: E402
from brushwork.protect.clips import detect_clip, sample_frames  # noqa: E402
from brushwork.protect.provenance import SOURCE_TYPE  # noqa: E402
from brushwork.protect.verify import INTACT, MODIFIED, UNKNOWN  # noqa: E402
from brushwork.records import read_record, sha256_file  # noqa: E402
from brushwork.style.video import read_frames, write_frames  # noqa: E402

EXAMPLES = Path(api.__file__).parent / "examples"
MODEL = EXAMPLES / "starry_night-fast.safetensors"


#: A fixed work ID keeps the marked pixels, and so the test, deterministic.
WORK_ID = 0x2B5E7


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    """Keys and registry in a fresh folder for this module, keys made (so clips get signed)."""
    root = tmp_path_factory.mktemp("home")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("BRUSHWORK_CONFIG_DIR", str(root / "config"))
        env.setenv("BRUSHWORK_DATA_DIR", str(root / "data"))
        init_keys()
        yield root


def pan_video(path: Path, frames: int = 6, size: tuple[int, int] = (160, 128)) -> Path:
    """A camera panning over a photo (a flat synthetic scene would be too bare to carry any mark)."""
    photo = Image.open(EXAMPLES / "tubingen.jpg").convert("RGB")
    photo = photo.resize((size[0] + 4 * frames, size[1]), Image.BICUBIC)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=12)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        for i in range(frames):
            frame = av.VideoFrame.from_image(photo.crop((4 * i, 0, 4 * i + size[0], size[1])))
            frame.pts, frame.time_base = i, Fraction(1, 12)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


@pytest.fixture(scope="module")
def stylised(home) -> Path:
    out = home / "painted.mp4"
    report = api.stylize_video(pan_video(home / "in.mp4"), out, model=MODEL, protection=Protection(work_id=WORK_ID))
    assert report.frames == 6
    return out


def test_stylised_video_is_marked_signed_registered_and_verifies(stylised):
    note = read_record(stylised).extra["protection"]
    assert note["watermark"] and note["watermark_frames"] == "every frame" and note["c2pa"]
    assert note["original_size"] == [160, 128] and note["opted_out"] == [] and note["work_id"] == WORK_ID
    report = verify(stylised)
    assert report.verdict == INTACT, report.line()
    assert report.watermark["work_id"] == WORK_ID
    assert report.watermark["frames_read"] == 6 and report.watermark["frames_agreeing"] >= 5  # not only the first
    assert report.manifest["state"] == "trusted" and report.manifest["work_id"] == note["work_id"]
    assert report.source_type == SOURCE_TYPE  # stated by the manifest: MP4 carries no XMP here
    work = Registry().get(note["work_id"])
    assert work.path == str(stylised.resolve()) and work.sha256 == sha256_file(stylised) and work.phash


def test_reencoded_or_edited_clips_are_modified_and_a_foreign_clip_is_unknown(home, stylised):
    work_id = WORK_ID
    reencoded = home / "reencoded.mp4"
    write_frames(read_frames(stylised), reencoded, fps=12, crf=23)  # no manifest, no record
    report = verify(reencoded)
    assert report.verdict == MODIFIED and report.watermark["work_id"] == work_id, report.line()
    assert report.manifest["state"] == "absent"
    assert main(["registry", "find", str(reencoded)]) == 0

    edited = home / "edited.mp4"
    data = bytearray(stylised.read_bytes())
    data[len(data) // 2] ^= 0xFF  # inside the frames: the signature still names the old bytes
    edited.write_bytes(bytes(data))
    report = verify(edited)
    assert report.verdict == MODIFIED and report.manifest["state"] == "tampered", report.line()

    foreign = verify(pan_video(home / "foreign.mp4"))
    assert foreign.verdict == UNKNOWN and foreign.watermark["work_id"] is None


def test_opt_outs_are_recorded_for_clips(home, capsys):
    out = home / "plain.mp4"
    source = pan_video(home / "in.mp4", frames=3)
    assert main(["video", str(source), "--model", str(MODEL), "-o", str(out), "-q", "--no-watermark", "--no-sign"]) == 0
    assert "work " in capsys.readouterr().out  # registered all the same
    note = read_record(out).extra["protection"]
    assert note["watermark"] is None and set(note["opted_out"]) == {"watermark", "provenance"}
    report = verify(out)
    assert report.watermark["work_id"] is None and report.manifest["state"] == "absent"
    assert Registry().get(note["work_id"]).sha256 == sha256_file(out)


@pytest.fixture(scope="module")
def gan_run(tmp_path_factory) -> Path:
    """A tiny GAN trained just long enough (fast learning rates, no EMA) to paint with some contrast: an
    untrained generator's near-flat grey is too bare for any mark (as it would be for a still)."""
    root = tmp_path_factory.mktemp("gan")
    data = root / "images"
    data.mkdir()
    photo = Image.open(EXAMPLES / "tubingen.jpg").convert("RGB")
    for i in range(8):
        photo.crop((40 * i, 0, 40 * i + 300, 300)).resize((32, 32), Image.BICUBIC).save(data / f"{i}.png")
    run = root / "run"
    train = ["gan", "train", str(data), "-o", str(run), "--steps", "20", "--batch-size", "4", "--latent", "16",
             "--g-width", "8", "--d-width", "8", "--lr-g", "2e-3", "--lr-d", "2e-3", "--ema", "0",
             "--sample-every", "100", "--eval-every", "0", "-q"]  # fmt: skip
    assert main(train) == 0
    return run


def test_gan_walk_gif_is_marked_signed_and_verifies(home, gan_run):
    walk = home / "walk.gif"
    assert main(["gan", "interpolate", str(gan_run), "--seeds", "0,1", "--frames", "1", "-o", str(walk)]) == 0
    assert Image.open(walk).n_frames == 2 and Image.open(walk).size == (256, 256)
    report = verify(walk)
    note = read_record(walk).extra["protection"]
    assert report.verdict == INTACT, report.line()
    assert report.watermark["work_id"] == note["work_id"] and report.watermark["frames_agreeing"] == 2
    assert report.manifest["state"] == "trusted"

    # A frame retouched in a copy (Pillow writes it anew: record kept, signature gone, bytes changed).
    frames = sample_frames(walk)
    frames[1].paste((255, 255, 255), (100, 100, 140, 140))
    edited = home / "edited.gif"
    frames[0].save(edited, save_all=True, append_images=frames[1:], comment=Image.open(walk).info["comment"])
    report = verify(edited)
    assert report.verdict == MODIFIED and report.watermark["work_id"] == note["work_id"], report.line()


def test_a_clip_needs_two_frames_to_agree():
    """One frame naming an ID could be chance (about 1 reading in 1000 passes the checksum): not enough."""
    photo = Image.open(EXAMPLES / "tubingen.jpg").convert("RGB").resize((256, 192), Image.BICUBIC)
    clean = [photo.rotate(angle) for angle in (0, 3, 6)]
    marked = watermark.embed(clean[0], 0x1234)
    assert detect_clip([marked, clean[1], clean[2]]).work_id is None
    reading = detect_clip([marked, watermark.embed(clean[1], 0x1234), clean[2]])
    assert reading.work_id == 0x1234 and reading.frames_agreeing == 2 and reading.frames_read == 3


def test_a_hint_gives_the_same_mark_as_the_search():
    image = Image.open(EXAMPLES / "tubingen.jpg").convert("RGB").resize((320, 240), Image.BICUBIC)
    searched, ok, strength = watermark.embed_hinted(image, 0x2B5E7)
    hinted, ok_again, same = watermark.embed_hinted(image, 0x2B5E7, strength)
    assert ok and ok_again and same == strength
    assert searched.tobytes() == hinted.tobytes() == watermark.embed(image, 0x2B5E7).tobytes()


def test_an_output_that_is_not_written_gives_back_its_work_id(home, tmp_path, monkeypatch):
    from brushwork import output
    from brushwork.records import new_record

    registry = Registry(tmp_path / "registry.sqlite")
    protection = Protection(provenance=False, registry=registry)
    frame = Image.open(EXAMPLES / "tubingen.jpg").convert("RGB").resize((160, 128))

    def fails(path, comment, mark):
        mark(frame)
        raise OSError("the disk is full")

    def fails_too(*args):
        raise BrushworkError("still.png: could not write (the disk is full); nothing was written")

    record = new_record("video", {})
    with pytest.raises(OSError):
        output.save_clip(tmp_path / "clip.mp4", record, frame, fails, protection=protection)
    work_id = record.extra["protection"]["work_id"]
    assert work_id is not None and registry.get(work_id) is None  # reserved while writing, then given back
    record = new_record("fast", {})
    with monkeypatch.context() as patch:
        patch.setattr(output, "atomic_write", fails_too)
        with pytest.raises(BrushworkError, match="could not write"):
            output.save_output(frame, tmp_path / "still.png", record, protection=protection)
    work_id = record.extra["protection"]["work_id"]
    assert work_id is not None and registry.get(work_id) is None
    assert not list(tmp_path.glob("*.mp4")) and not list(tmp_path.glob("*.png"))


def test_damaged_clips_are_one_line(home, stylised, tmp_path, capsys):
    data = stylised.read_bytes()
    truncated_gif = tmp_path / "cut.gif"
    walk = tmp_path / "walk.gif"
    frames = [Image.open(EXAMPLES / "tubingen.jpg").convert("RGB").resize((64, 48)).rotate(a) for a in range(6)]
    frames[0].save(walk, save_all=True, append_images=frames[1:], duration=40)
    truncated_gif.write_bytes(walk.read_bytes()[: walk.stat().st_size // 2])
    odd_codec = tmp_path / "odd.mp4"
    cut = data.rfind(b"avc1")  # the sample description's codec tag: one PyAV has no decoder for
    odd_codec.write_bytes(data[:cut] + b"zzzz" + data[cut + 4 :])
    for path, says in ((truncated_gif, "not a GIF brushwork can read"), (odd_codec, "codec is not one")):
        for verb in (["verify"], ["registry", "find"]):
            capsys.readouterr()
            assert main([*verb, str(path)]) == 2
            err = capsys.readouterr().err
            assert says in err and err.count("\n") == 1, err
