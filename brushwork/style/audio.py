"""Style driven by sound: a soundtrack's loudness, onsets, brightness and tempo, frame by frame.

The analysis is small and numpy-only (decoding is PyAV's, which the video extra already brings):
a short-time Fourier transform gives per-frame loudness (RMS, in dB relative to the clip), onset
strength (positive spectral flux), spectral centroid (brightness) and one tempo for the clip (the
autocorrelation of the onset envelope, leaning towards 120 BPM to avoid octave errors). Each curve
is smoothed with an attack/release envelope, so the style swells on a beat and eases off after it:
it breathes rather than flickers.

The mapping to style settings is a creative choice, not a claim about the music:

- ``strength``: louder and busier -> more style (fast models: blend with the frame; AdaIN: alpha);
  quiet passages keep ``MIN_STRENGTH`` of it.
- ``blend``: brighter sound -> more of the second style (AdaIN with two styles).
- ``scale``: slower tempo -> bigger strokes, pulsing a little with the onsets (the frame, and the
  style for AdaIN, are resized before stylising).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from brushwork.errors import BrushworkError

MODES = ("strength", "blend", "scale")
SAMPLE_RATE = 22050
HOP = 512  # about 43 analysis frames a second at SAMPLE_RATE
N_FFT = 2048
MAX_SECONDS = 30 * 60  # longer soundtracks are refused rather than decoded into memory
SILENCE_RMS = 1e-4  # about -80 dBFS: below this everywhere, the clip is silent
MIN_STRENGTH = 0.3
#: Attack and release times (s) of the envelopes: quick to rise on a beat, slow to let go.
ATTACK, RELEASE = 0.05, 0.5
#: The brightness curve glides (same time both ways), so the mix of two styles does not jitter.
BLEND_SMOOTHING = 0.6
TEMPO_RANGE = (60.0, 200.0)
DYNAMIC_RANGE = 50.0  # dB below the clip's peak that still counts as sound


def load_audio(path: str | os.PathLike, rate: int = SAMPLE_RATE) -> np.ndarray:
    """The first audio stream of ``path`` (any file FFmpeg reads: WAV, MP3, a video's soundtrack) as mono
    float32 samples at ``rate``."""
    from brushwork.media import require_av

    av = require_av()
    path = Path(path)
    if not path.is_file():
        raise BrushworkError(f"{path}: no such file")
    try:
        container = av.open(str(path))
    except av.FFmpegError as exc:
        raise BrushworkError(f"{path}: not audio brushwork can read ({exc})") from exc
    chunks, total = [], 0
    with container:
        if not container.streams.audio:
            raise BrushworkError(f"{path}: has no audio stream")
        resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
        try:
            for frame in container.decode(audio=0):
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().reshape(-1))
                    total += chunks[-1].size
                if total > MAX_SECONDS * rate:
                    raise BrushworkError(f"{path}: audio longer than {MAX_SECONDS // 60} minutes")
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1))
        except av.FFmpegError as exc:
            raise BrushworkError(f"{path}: unreadable audio ({exc})") from exc
    if not chunks:
        raise BrushworkError(f"{path}: the audio stream holds no samples")
    return np.concatenate(chunks).astype(np.float32)


@dataclass
class AudioFeatures:
    """Smoothed curves over the analysis frames (``rate`` a second), each in 0..1, and the clip's tempo."""

    rate: float
    loudness: np.ndarray
    onsets: np.ndarray
    brightness: np.ndarray
    tempo: float  # beats per minute
    seconds: float
    notes: list[str] = field(default_factory=list)

    @property
    def drive(self) -> np.ndarray:
        """How hard the music pushes at each moment: loudness with the onsets' punch."""
        return np.clip(0.6 * self.loudness + 0.4 * self.onsets, 0, 1)


def analyse(samples: np.ndarray, rate: int = SAMPLE_RATE) -> AudioFeatures:
    """Loudness, onset strength and brightness curves, smoothed, and the tempo of a mono clip."""
    samples = np.asarray(samples, dtype=np.float32).reshape(-1)
    frame_rate = rate / HOP
    seconds = samples.size / rate
    if samples.size < N_FFT:
        samples = np.pad(samples, (0, N_FFT - samples.size))
    frames = np.lib.stride_tricks.sliding_window_view(samples, N_FFT)[::HOP]
    rms = np.sqrt((frames.astype(np.float64) ** 2).mean(1))
    n = len(rms)
    if rms.max() < SILENCE_RMS:
        flat = np.full(n, 0.5)
        return AudioFeatures(frame_rate, np.ones(n), np.zeros(n), flat, 120.0, seconds,
                             ["the audio is silent: the style holds steady (no reaction)"])  # fmt: skip
    spectrum = np.abs(np.fft.rfft(frames * np.hanning(N_FFT), axis=1))
    freqs = np.fft.rfftfreq(N_FFT, 1 / rate)
    log_spec = np.log1p(100 * spectrum)
    flux = np.concatenate([[0.0], np.maximum(log_spec[1:] - log_spec[:-1], 0).sum(1)])
    centroid = (spectrum * freqs).sum(1) / np.maximum(spectrum.sum(1), 1e-9)
    # Loudness in dB, floored DYNAMIC_RANGE below the peak: the gaps between notes count as quiet, not as -180 dB.
    db = 20 * np.log10(np.maximum(rms, rms.max() * 10 ** (-DYNAMIC_RANGE / 20)))
    loud = _spread(db)
    sounding = rms > SILENCE_RMS
    bright = _spread(np.log2(np.maximum(centroid, 20.0)), where=sounding)
    bright[~sounding] = 0.5
    onsets = _spread(flux, low_pct=0)
    tempo = estimate_tempo(flux, frame_rate)
    return AudioFeatures(
        frame_rate,
        envelope(loud, frame_rate, ATTACK, RELEASE),
        envelope(onsets, frame_rate, ATTACK, RELEASE),
        envelope(bright, frame_rate, BLEND_SMOOTHING, BLEND_SMOOTHING),
        tempo,
        seconds,
    )


def _spread(values: np.ndarray, where: np.ndarray | None = None, low_pct: float = 5) -> np.ndarray:
    """``values`` mapped to 0..1 between their own low and 95th percentiles (over ``where``): each clip
    uses the whole range of the effect. A curve with no spread maps to 0.5."""
    ref = values[where] if where is not None and where.any() else values
    low, high = np.percentile(ref, low_pct), np.percentile(ref, 95)
    if high - low < 1e-6:
        return np.full(values.shape, 0.5)
    return np.clip((values - low) / (high - low), 0, 1)


def envelope(values: np.ndarray, rate: float, attack: float, release: float) -> np.ndarray:
    """One-pole follower: rises with time constant ``attack`` (s), falls with ``release``. Written out
    because it is a few lines and numpy has no asymmetric filter."""
    up, down = 1 - np.exp(-1 / (attack * rate)), 1 - np.exp(-1 / (release * rate))
    out = np.empty(len(values))
    level = values[0] if len(values) else 0.0
    for i, v in enumerate(values):
        level += (up if v > level else down) * (v - level)
        out[i] = level
    return out


def estimate_tempo(onset_curve: np.ndarray, frame_rate: float) -> float:
    """Beats per minute: the lag at which the onset envelope best matches itself, within TEMPO_RANGE,
    weighed towards 120 BPM (a log-normal prior, one octave wide) so that half and double tempo lose."""
    x = onset_curve - onset_curve.mean()
    if len(x) < 4 or not np.any(x):
        return 120.0
    corr = np.correlate(x, x, mode="full")[len(x) - 1 :]
    lags = np.arange(len(corr))
    with np.errstate(divide="ignore"):
        bpm = 60 * frame_rate / lags
    valid = (bpm >= TEMPO_RANGE[0]) & (bpm <= TEMPO_RANGE[1])
    if not valid.any():
        return 120.0
    prior = np.exp(-0.5 * np.log2(np.where(valid, bpm, 120) / 120) ** 2)
    score = np.where(valid, np.maximum(corr, 0) * prior, -1)
    return float(bpm[int(np.argmax(score))])


@dataclass(frozen=True)
class FrameSettings:
    """What the music asks of one frame. Neutral values (1, None, 1) leave the user's settings alone."""

    strength: float = 1.0  # multiplies the style strength (fast) or alpha (AdaIN)
    blend: float | None = None  # share of the second style (AdaIN with two styles)
    scale: float = 1.0  # stroke size: the frame is stylised at 1/scale of its size


class AudioDrive:
    """Per-frame settings from a soundtrack: ``drive.at(seconds)`` for the modes chosen."""

    def __init__(self, features: AudioFeatures, modes: list[str] | tuple[str, ...]):
        bad = [m for m in modes if m not in MODES]
        if bad or not modes:
            raise BrushworkError(f"audio-reactive modes are {', '.join(MODES)}, not {', '.join(bad) or 'none'}")
        self.features, self.modes = features, tuple(dict.fromkeys(modes))
        self.notes = list(features.notes)
        self.base_scale = float(np.clip(np.sqrt(120.0 / features.tempo), 0.75, 1.4))

    @classmethod
    def from_file(cls, path: str | os.PathLike, modes) -> AudioDrive:
        return cls(analyse(load_audio(path)), modes)

    def check_length(self, video_seconds: float) -> None:
        """Note when the sound ends before the picture: the last values hold from there."""
        if video_seconds > self.features.seconds + 0.05:
            self.notes.append(
                f"the audio ({self.features.seconds:.1f} s) is shorter than the video ({video_seconds:.1f} s): "
                "its last values hold to the end"
            )

    def _curve(self, values: np.ndarray, seconds: float) -> float:
        times = np.arange(len(values)) / self.features.rate
        return float(np.interp(seconds, times, values))  # holds the last value past the end

    def at(self, seconds: float) -> FrameSettings:
        f = self.features
        strength, blend, scale = 1.0, None, 1.0
        if "strength" in self.modes:
            strength = MIN_STRENGTH + (1 - MIN_STRENGTH) * self._curve(f.drive, seconds)
        if "blend" in self.modes:
            blend = self._curve(f.brightness, seconds)
        if "scale" in self.modes:
            scale = self.base_scale * (1 + 0.2 * (self._curve(f.onsets, seconds) - 0.5))
        return FrameSettings(strength, blend, scale)

    def describe(self) -> dict:
        """For the record: what was measured and how it was used."""
        return {"modes": list(self.modes), "tempo_bpm": round(self.features.tempo, 1),
                "audio_seconds": round(self.features.seconds, 2), "base_scale": round(self.base_scale, 3),
                "notes": self.notes}  # fmt: skip


def still_settings(path: str | os.PathLike) -> dict:
    """Settings for one still from a clip's mood (a creative mapping): a loud, busy clip gets a heavier style
    weight; a slow one bigger strokes (style scale < 1 enlarges the style's patterns relative to the
    output); a bright one leans to the second of two styles."""
    features = analyse(load_audio(path))
    drive = float(np.mean(features.drive))
    return {
        "style_weight_factor": round(0.5 + 1.5 * drive, 3),
        "style_scale_factor": round(float(np.clip(np.sqrt(features.tempo / 120.0), 0.7, 1.4)), 3),
        "second_style_share": round(float(np.mean(features.brightness)), 3),
        "tempo_bpm": round(features.tempo, 1),
        "notes": features.notes,
    }
