"""Style driven by sound: features of synthetic audio, smoothing, video and stills, bad input."""

import wave

import numpy as np
import pytest

from brushwork.errors import BrushworkError
from brushwork.records import record_of
from brushwork.style import audio
from brushwork.style.audio import AudioDrive, analyse, envelope, load_audio, still_settings
from tests.conftest import make_image

av = pytest.importorskip("av")
RATE = 22050


def write_wav(path, samples, rate=RATE):
    """Mono 16-bit WAV with the stdlib."""
    pcm = (np.clip(samples, -1, 1) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
    return path


def bursts(seconds=4.0, bpm=120.0, freq=440.0, rate=RATE, quiet_until=0.0):
    """Sine bursts (0.1 s, decaying) on every beat; silent before ``quiet_until`` seconds."""
    t = np.arange(int(seconds * rate)) / rate
    phase = (t * bpm / 60) % 1 * 60 / bpm  # seconds since the last beat
    sound = 0.8 * np.sin(2 * np.pi * freq * t) * np.exp(-phase / 0.05) * (phase < 0.1)
    return np.where(t < quiet_until, 0.0, sound)


def test_decodes_a_wav_to_mono_floats(tmp_path):
    path = write_wav(tmp_path / "a.wav", bursts(1.0, rate=16000), rate=16000)
    samples = load_audio(path)
    assert samples.dtype == np.float32 and abs(samples.size - RATE) < 600  # resampled to 22.05 kHz
    assert 0.5 < np.abs(samples).max() < 0.9


@pytest.mark.parametrize("bpm", [90.0, 120.0, 150.0])
def test_tempo_of_beats(bpm):
    assert analyse(bursts(8.0, bpm)).tempo == pytest.approx(bpm, rel=0.05)


def test_loud_and_bright_curves_follow_the_sound():
    quiet_then_loud = np.concatenate([0.02 * np.sin(np.arange(RATE * 2) * 0.1), bursts(2.0)])
    f = analyse(quiet_then_loud)
    half = len(f.drive) // 2
    assert f.drive[half + 10 :].mean() > f.drive[: half - 5].mean() + 0.3
    low_high = np.concatenate([np.sin(2 * np.pi * 200 * np.arange(RATE * 2) / RATE),
                               np.sin(2 * np.pi * 4000 * np.arange(RATE * 2) / RATE)])  # fmt: skip
    g = analyse(0.5 * low_high)
    assert g.brightness[-5:].mean() > 0.8 and g.brightness[:40].mean() < 0.2


def test_envelope_rises_fast_and_falls_slowly():
    step = np.r_[np.zeros(10), np.ones(50), np.zeros(50)]
    out = envelope(step, 100.0, attack=0.02, release=0.3)
    assert out[15] > 0.9  # 5 frames after the rise
    assert out[65] > 0.8 and out[-1] < 0.25  # 5 frames after the fall, still high; eases off


def test_smoothed_strength_changes_less_than_the_raw_loudness():
    drive = AudioDrive(analyse(bursts(4.0, 120.0)), ["strength"])
    values = np.array([drive.at(i / 25).strength for i in range(100)])
    assert values.min() >= audio.MIN_STRENGTH and values.max() <= 1.0
    assert values.max() - values.min() > 0.2  # it reacts...
    assert np.abs(np.diff(values)).max() < 0.35  # ...without jumping from floor to ceiling in one frame


def test_silent_audio_is_flat_with_a_note(tmp_path):
    drive = AudioDrive.from_file(write_wav(tmp_path / "s.wav", np.zeros(RATE)), ["strength", "blend", "scale"])
    assert "silent" in drive.notes[0]
    assert len({drive.at(t) for t in (0.0, 0.3, 0.9)}) == 1


def test_bad_audio(tmp_path):
    (tmp_path / "junk.wav").write_bytes(b"not audio at all")
    with pytest.raises(BrushworkError, match="not audio|unreadable|no audio"):
        load_audio(tmp_path / "junk.wav")
    with pytest.raises(BrushworkError, match="no such file"):
        load_audio(tmp_path / "missing.wav")
    with pytest.raises(BrushworkError, match="modes are"):
        AudioDrive(analyse(bursts(1.0)), ["loudness"])


def test_audio_reactive_video_muxes_the_song_and_notes_a_short_one(tmp_path):
    from brushwork.style.audio import FrameSettings
    from brushwork.style.video import read_frames, stylize_video
    from tests.test_video import make_video

    src = make_video(tmp_path / "in.mp4", frames=24, audio=False)  # 2 s at 12 fps
    song = write_wav(tmp_path / "song.wav", bursts(1.0, 120.0))  # shorter than the video
    drive = AudioDrive.from_file(song, ["strength", "scale"])
    seen = []

    def stylise(picture, settings: FrameSettings):
        seen.append(settings)
        return picture.point(lambda v: int(v * settings.strength))

    report = stylize_video(src, tmp_path / "out.mp4", stylise, stabilise=0.0, drive=drive, audio=song)
    assert report.frames == 24 and report.audio_streams == 1
    assert any("shorter than the video" in n for n in report.notes)
    assert report.audio_reactive["modes"] == ["strength", "scale"]
    assert len({s.strength for s in seen}) > 3 and seen[-1] == seen[-2]  # reacts, then holds the last value
    with av.open(str(tmp_path / "out.mp4")) as out:
        assert out.streams.audio[0].codec_context.name == "aac"
        assert 0.8 < float(out.streams.audio[0].duration * out.streams.audio[0].time_base) < 1.3
    assert len(read_frames(tmp_path / "out.mp4")) == 24


def test_cli_audio_reactive_fast_and_adain(tmp_path, capsys):
    from brushwork.cli import EXAMPLES, main
    from tests.test_video import make_video

    src = make_video(tmp_path / "in.mp4", frames=6, size=(96, 64))
    out = tmp_path / "out.mp4"
    fast = str(EXAMPLES / "starry_night-fast.safetensors")
    assert (
        main(["video", str(src), "--model", fast, "-o", str(out), "-q", "--audio-reactive", "strength", "scale"]) == 0
    )
    assert "audio-reactive: strength, scale" in capsys.readouterr().out
    from brushwork.records import read_record

    record = read_record(out)  # the MP4's comment
    assert (
        record.parameters["audio_reactive"] == ["strength", "scale"]
        and record.parameters["audio_analysis"]["tempo_bpm"]
    )
    adain_model, styles = str(EXAMPLES / "adain-lite0.safetensors"), [str(EXAMPLES / "starry_night.jpg")]
    argv = ["video", str(src), "--model", adain_model, "-o", str(tmp_path / "a.mp4"), "-q", "--audio-reactive", "blend"]
    assert main([*argv, "--style", *styles]) == 2
    assert "two styles" in capsys.readouterr().err
    assert main([*argv, "--style", *styles, str(EXAMPLES / "shipwreck.jpg")]) == 0
    assert main([*argv[:-1], "scale", "--style", *styles, "--audio", str(tmp_path / "nope.wav"), "--force"]) == 2
    assert "no such file" in capsys.readouterr().err
    silent_film = make_video(tmp_path / "silent.mp4", frames=3, size=(96, 64), audio=False)
    assert (
        main(
            ["video", str(silent_film), "--model", fast, "-o", str(tmp_path / "s.mp4"), "--audio-reactive", "strength"]
        )
        == 2
    )
    assert "has no audio stream; give the sound with --audio" in capsys.readouterr().err
    assert not (tmp_path / "s.mp4").exists()


def test_still_from_a_clips_mood(tmp_path, tiny_net):
    import brushwork

    slow, fast = (
        write_wav(tmp_path / "slow.wav", bursts(6.0, 70.0)),
        write_wav(tmp_path / "fast.wav", bursts(6.0, 170.0)),
    )
    assert still_settings(slow)["style_scale_factor"] < still_settings(fast)["style_scale_factor"]
    out = brushwork.stylize(make_image(48, 32), make_image(48, 32, 1, "stripes"), backbone=tiny_net, audio=slow,
                            image_size=32, iterations=2)  # fmt: skip
    record = record_of(out)
    assert record.inputs["audio"]["name"] == "slow.wav" and record.parameters["style_scale"] == 1.0  # as asked
    assert record.extra["audio_mapping"]["tempo_bpm"] == pytest.approx(70.0, rel=0.06)
    assert record.extra["audio_mapping"]["style_scale_factor"] < 1.0
