"""An invisible watermark: a 32-bit payload in the pixels that survives re-encoding, resizing and crops.

The mark is RivaGAN (Zhang et al. 2019) as shipped by the ``invisible-watermark`` package: an
ONNX encoder/decoder pair that carries exactly 32 bits. The payload is a 20-bit work ID (a million
works per registry) followed by its CRC-12, so a decoder reading noise off an unmarked image must
also hit the checksum *and* decode with a confident margin before anything is reported. When the
checksum fails, the least reliable bits (smallest |logit|) are flipped in turn and the checksum
tried again (Chase decoding): a copy with one or two wrong bits still reads, and the false-positive
odds stay near 4 in 4096 per reading. With a CRC-8 and no flips we measured 3 false IDs in 308
attacked unmarked images. We measured the
alternative, a second ``dwtDctSvd`` mark for the check bits: it cost 4-10 dB of PSNR and was lost
under crops and brightness/contrast changes that RivaGAN survives, so the check bits ride in the
one robust mark instead (figures in docs/benchmarks.md).

RivaGAN runs at a fixed *working size* (long side :data:`WORK_SIDE`): the mark is computed on a
downscaled copy and its residual is upscaled onto the full image. That keeps the cost constant
(a 4k print costs what a 256 px image does; 256 rather than 512 also reads JPEG-compressed
copies with a wider margin, as the mark's residual is smoother), and a detector that rescales any copy back to the
working size reads a resized copy as well as the original. A cropped copy has lost that
reference; given the original size (kept in the record), :func:`detect` also tries the scale
the original had.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from brushwork.errors import BrushworkError

#: Long side, in pixels, of the copy that RivaGAN marks and reads.
WORK_SIDE = 256
#: RivaGAN's networks shrink the image 8x; a thinner working copy is stretched to this.
MIN_WORK_SHORT_SIDE = 64
#: Payload layout: work ID bits, then CRC bits (CRC-12, polynomial 0x80F).
ID_BITS, CRC_BITS, CRC_POLY = 20, 12, 0x80F
#: Least reliable bits that Chase decoding may flip (every subset of them is tried: 2**n candidates).
CHASE_BITS = 2
MAX_WORK_ID = (1 << ID_BITS) - 1
#: Mean |logit| of the 32 decoded bits below which nothing is reported, even with a matching
#: checksum. Marked images read about 7 or more after JPEG 50, WebP or a screenshot; unmarked
#: photos mostly read 0.5-4 but noise can read 7+, so the checksum does most of the work and this
#: only drops the faintest readings (benchmarks/watermark_robustness.py prints both distributions).
CONFIDENCE_THRESHOLD = 3.0
#: Crop fractions ``verify`` and ``registry find`` try on a copy without its record (so without the
#: original size): a crop to 75 % read back from 2/22 test images as it is, 15/22 with these
#: guesses, with no false IDs in 330 unmarked images read the same way.
CROP_GUESSES = (0.9, 0.75)
#: Strengths of the residual tried in turn until the payload reads back (1 = RivaGAN's own).
GAINS = (1.0, 1.5, 2.0)
#: RivaGAN passes over the working copy at most.
PASSES = 3


@dataclass
class Detection:
    """What the decoder read: the work ID (None unless the checksum and confidence both pass) and why."""

    work_id: int | None
    bits: list[int] = field(default_factory=list)
    confidence: float = 0.0  # mean |logit| of the 32 bits
    crc_ok: bool = False
    scale: str = "none"  # which rescaling gave this reading

    def to_dict(self) -> dict:
        return asdict(self)


def crc(value: int, nbits: int = ID_BITS, width: int = CRC_BITS, poly: int = CRC_POLY) -> int:
    """CRC of the ``nbits`` bits of ``value``, MSB first (plain shift register, no reflection).

    Written here because it is ten lines and the libraries that have it (crcmod, crccheck)
    would be a dependency for one function.
    """
    top, mask = 1 << (width - 1), (1 << width) - 1
    register = 0
    for i in range(nbits - 1, -1, -1):
        feedback = bool(register & top) ^ ((value >> i) & 1)
        register = (register << 1) & mask
        if feedback:
            register ^= poly
    return register


def payload_bits(work_id: int) -> list[int]:
    """The 32 bits RivaGAN carries for ``work_id``: the ID then its CRC."""
    if not 0 <= work_id <= MAX_WORK_ID:
        raise BrushworkError(f"work id must be between 0 and {MAX_WORK_ID}, not {work_id}")
    word = (work_id << CRC_BITS) | crc(work_id)
    return [(word >> i) & 1 for i in range(ID_BITS + CRC_BITS - 1, -1, -1)]


def parse_payload(bits: list[int]) -> tuple[int, bool]:
    """(work ID, whether its CRC matches) from 32 decoded bits."""
    word = 0
    for bit in bits:
        word = (word << 1) | int(bit)
    work_id = word >> CRC_BITS
    return work_id, crc(work_id) == (word & ((1 << CRC_BITS) - 1))


def chase_decode(logits: np.ndarray) -> tuple[list[int], bool]:
    """The hard-decision bits, or the first variant with some of the :data:`CHASE_BITS` least reliable
    bits flipped whose CRC holds; and whether any did."""
    hard = [int(v > 0) for v in logits]
    weakest = np.argsort(np.abs(logits))[:CHASE_BITS]
    for mask in range(1 << CHASE_BITS):
        bits = list(hard)
        for k, index in enumerate(weakest):
            if mask >> k & 1:
                bits[index] ^= 1
        if parse_payload(bits)[1]:
            return bits, True
    return hard, False


def work_size(size: tuple[int, int]) -> tuple[int, int]:
    """The working size for an image of ``size``: long side :data:`WORK_SIDE`, same aspect."""
    w, h = size
    scale = WORK_SIDE / max(w, h)
    return max(MIN_WORK_SHORT_SIDE, round(w * scale)), max(MIN_WORK_SHORT_SIDE, round(h * scale))


@functools.cache
def _models():
    """RivaGAN's ONNX encoder and decoder sessions (``.encoder``, ``.decoder``), made once per process.

    They are read from the invisible-watermark wheel without importing it: its Python wrapper imports
    torch (seconds), which ``verify`` and the registry need for nothing else (#21)."""
    import importlib.util
    import types

    spec = importlib.util.find_spec("imwatermark")
    folder = Path(next(iter(spec.submodule_search_locations))) if spec and spec.submodule_search_locations else None
    try:
        import onnxruntime
    except ImportError:  # pragma: no cover - the protect extra is missing
        folder = None
    if folder is None or not (folder / "rivagan_encoder.onnx").is_file():
        raise BrushworkError(
            "the watermark needs 'invisible-watermark' and 'onnxruntime' (pip install brushwork reinstalls them)"
        )
    encoder, decoder = (onnxruntime.InferenceSession(str(folder / f"rivagan_{p}.onnx")) for p in ("encoder", "decoder"))
    return types.SimpleNamespace(encoder=encoder, decoder=decoder)  # ONNX files inside the wheel: no download


def _to_frame(rgb: np.ndarray) -> np.ndarray:
    """RGB uint8 HxWx3 -> RivaGAN's input: BGR in [-1, 1], shaped (1, 3, 1, H, W)."""
    bgr = rgb[:, :, ::-1].astype(np.float32) / 127.5 - 1.0
    return np.ascontiguousarray(bgr.transpose(2, 0, 1)[None, :, None])


#: Pixels of the full picture composed at a time: the float copies that adding the mark needs stay a
#: strip's (48 MB each) instead of the picture's (3 GB each at 16k x 16k); up to this size, one strip.
STRIP_PIXELS = 1 << 22


def _compose(rgb: Image.Image, small: np.ndarray, marked: np.ndarray, gain: float) -> Image.Image:
    """``rgb`` plus ``gain`` times the working copy's residual (``marked - small``) upscaled to its size.

    Done in horizontal strips: each strip of the residual is upscaled from the matching band of the
    working copy (Pillow's ``box``, which also reads the rows just outside it, so the strips agree
    with one whole upscale to 1e-4 of a level)."""
    width, height = rgb.size
    residual = [Image.fromarray(marked[:, :, c].astype(np.float32) - small[:, :, c]) for c in range(3)]
    small_w, small_h = residual[0].size  # Pillow's 'F' mode keeps the sign and the fractions
    out = Image.new("RGB", rgb.size)
    rows = max(1, STRIP_PIXELS // width)
    for top in range(0, height, rows):
        bottom = min(height, top + rows)
        box = (0, top * small_h / height, small_w, bottom * small_h / height)
        strip = np.stack([np.asarray(r.resize((width, bottom - top), Image.BICUBIC, box=box)) for r in residual], -1)
        base = np.asarray(rgb.crop((0, top, width, bottom)), dtype=np.float32)
        out.paste(Image.fromarray(np.clip(base + gain * strip, 0, 255).round().astype(np.uint8)), (0, top))
    return out


@dataclass(frozen=True)
class Strength:
    """How hard a picture was marked: RivaGAN passes over the working copy, then the residual's gain."""

    passes: int = 1
    gain: float = GAINS[0]


#: The most a picture is ever marked; the last strength the search tries.
STRONGEST = Strength(PASSES, GAINS[-1])


def embed(image: Image.Image, work_id: int) -> Image.Image:
    """``image`` with ``work_id`` marked invisibly (about 40 dB PSNR). Alpha, if any, is kept as it is."""
    return embed_checked(image, work_id)[0]


def embed_checked(image: Image.Image, work_id: int,
                  survive: Callable[[Image.Image], Image.Image] | None = None) -> tuple[Image.Image, bool]:  # fmt: skip
    """:func:`embed`, and whether every bit reads back from the result.

    The mark is read back before returning. On some pictures one RivaGAN pass leaves a bit or two
    wrong, so the working copy is marked again (up to :data:`PASSES` times, each costing about
    5 dB); and moving the residual from the working copy to the full image smooths it, so it is
    strengthened step by step (:data:`GAINS`) until the whole payload reads back from the result.
    On a few pictures some payloads never do (1 of the 22 test images for one ID); a caller free to
    choose the ID tries another (``Protection`` does). With ``survive``, the payload must read back
    from ``survive(result)`` instead: the result as the file format will store it (a clip's frames
    are compressed, a GIF's quantised to a palette).
    """
    marked, ok, _ = embed_hinted(image, work_id, survive=survive)
    return marked, ok


def embed_hinted(
    image: Image.Image,
    work_id: int,
    hint: Strength | None = None,
    survive: Callable[[Image.Image], Image.Image] | None = None,
) -> tuple[Image.Image, bool, Strength]:
    """:func:`embed_checked` that first tries ``hint``, the strength a similar picture needed (the
    previous frame of a clip), and also returns the strength this one needed.

    When the hinted strength reads back, a picture costs one encoder and one decoder run instead of
    at least three; when it does not, the usual search follows (reusing what was computed), unless
    the hint is already :data:`STRONGEST`.
    """
    riva = _models()
    alpha = image.getchannel("A") if image.mode in ("RGBA", "LA") else None
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    small_size = work_size(rgb.size)
    small = np.asarray(rgb.resize(small_size, Image.BICUBIC))
    bits = payload_bits(work_id)
    stages = [small]  # the working copy after 0, 1, 2 ... passes
    reads: dict[Strength, bool] = {}
    latest: list = [None, None]  # the latest attempt's strength and picture (one full-size picture at a time)

    def working(passes: int) -> np.ndarray:
        while len(stages) <= passes:
            stages.append(_encode(riva, stages[-1], bits))
        return stages[passes]

    def output(strength: Strength) -> Image.Image:
        if latest[0] != strength:
            latest[1] = None  # let the previous picture go before making the next
            marked = working(strength.passes)
            if small_size == rgb.size and strength.gain == 1:  # the working copy is the output
                latest[:] = strength, Image.fromarray(marked)
            else:
                latest[:] = strength, _compose(rgb, small, marked, strength.gain)
        return latest[1]

    def attempt(strength: Strength) -> bool:
        if strength not in reads:
            out = output(strength)
            stored = survive(out) if survive is not None else out
            reads[strength] = _hard_bits(riva, np.asarray(stored.resize(small_size, Image.BICUBIC))) == bits
        return reads[strength]

    def working_reads(passes: int) -> bool:
        if small_size == rgb.size:  # the same check as the output's at gain 1: run it once
            return attempt(Strength(passes, 1.0))
        return _hard_bits(riva, working(passes)) == bits

    def search() -> Strength:
        if hint is not None and (attempt(hint) or hint == STRONGEST):
            return hint  # a picture like one that nothing marked fully: the search would be in vain
        passes = 1
        while passes < PASSES and not working_reads(passes):
            passes += 1
        for gain in GAINS:
            strength = Strength(passes, gain)
            if attempt(strength):
                break
        return strength

    strength = search()
    out, ok = output(strength), reads[strength]
    if alpha is not None:
        out.putalpha(alpha)
    out.info = dict(image.info)
    return out, ok, strength


#: Pictures marked per ONNX call by :func:`embed_many` (same working size): RivaGAN needs about 85 MB a
#: picture at the working size, so this keeps a batch under 1 GB.
BATCH = 8


def embed_many(images: list[Image.Image], work_ids: list[int]) -> list[tuple[Image.Image, bool, Strength]]:
    """:func:`embed_hinted` (without hint) for many pictures at once: the same strength search, each
    of its steps one encoder or decoder call for every picture of a working size still searching.
    Returns (marked, whether every bit reads back, strength) per picture, in order."""
    if not images:  # a batch of pictures too small to mark: not even the ONNX runtime is loaded
        return []
    riva = _models()
    results: list = [None] * len(images)
    groups: dict[tuple[int, int], list[int]] = {}
    for i, image in enumerate(images):
        groups.setdefault(work_size(image.size), []).append(i)
    for small_size, members in groups.items():
        for start in range(0, len(members), BATCH):
            chunk = members[start : start + BATCH]
            for i, result in zip(chunk, _embed_group(riva, [images[i] for i in chunk], [work_ids[i] for i in chunk],
                                                    small_size), strict=True):  # fmt: skip
                results[i] = result
    return results


def _embed_group(riva, images: list[Image.Image], work_ids: list[int],
                 small_size: tuple[int, int]) -> list[tuple[Image.Image, bool, Strength]]:  # fmt: skip
    """The search of :func:`embed_hinted`, run in step over pictures of one working size."""
    rgbs = [image if image.mode == "RGB" else image.convert("RGB") for image in images]
    smalls = [np.asarray(rgb.resize(small_size, Image.BICUBIC)) for rgb in rgbs]
    bits = [payload_bits(w) for w in work_ids]
    stages = [[small] for small in smalls]
    passes = [1] * len(images)
    todo = list(range(len(images)))

    def encode(indices: list[int]) -> None:
        marked = _encode_batch(riva, [stages[i][-1] for i in indices], [bits[i] for i in indices])
        for i, array in zip(indices, marked, strict=True):
            stages[i].append(array)

    encode(todo)
    # More passes over the working copy while its payload does not read back (as embed_hinted does).
    while todo:
        reads = _hard_bits_batch(riva, [stages[i][passes[i]] for i in todo])
        todo = [i for i, got in zip(todo, reads, strict=True) if got != bits[i] and passes[i] < PASSES]
        for i in todo:
            passes[i] += 1
        if todo:
            encode(todo)
    same = [small_size == rgb.size for rgb in rgbs]
    outputs: list = [None] * len(images)
    done: list = [None] * len(images)
    todo = list(range(len(images)))
    for gain in GAINS:
        for i in todo:
            marked = stages[i][passes[i]]
            outputs[i] = (Image.fromarray(marked) if same[i] and gain == 1
                          else _compose(rgbs[i], smalls[i], marked, gain))  # fmt: skip
        reads = _hard_bits_batch(riva, [np.asarray(outputs[i].resize(small_size, Image.BICUBIC)) for i in todo])
        for i, got in zip(todo, reads, strict=True):
            if got == bits[i] or gain == GAINS[-1]:
                done[i] = (outputs[i], got == bits[i], Strength(passes[i], gain))
        todo = [i for i in todo if done[i] is None]
        if not todo:
            break
    results = []
    for image, (out, ok, strength) in zip(images, done, strict=True):
        if image.mode in ("RGBA", "LA"):
            out.putalpha(image.getchannel("A"))
        out.info = dict(image.info)
        results.append((out, ok, strength))
    return results


def _hard_bits_batch(riva, arrays: list[np.ndarray]) -> list[list[int]]:
    """:func:`_hard_bits` of many same-sized working copies, in one decoder call."""
    if not arrays:
        return []
    logits = riva.decoder.run(None, {"frame": np.concatenate([_to_frame(a) for a in arrays])})[0]
    return [[int(v > 0) for v in row] for row in logits]


def _encode_batch(riva, arrays: list[np.ndarray], bits: list[list[int]]) -> list[np.ndarray]:
    """:func:`_encode` of many same-sized working copies, in one encoder call."""
    frames = np.concatenate([_to_frame(a) for a in arrays])
    marked = riva.encoder.run(None, {"frame": frames, "data": np.array(bits, dtype=np.float32)})[0]
    bgr = (np.clip(marked[:, :, 0].transpose(0, 2, 3, 1), -1, 1) + 1) * 127.5
    return list(np.ascontiguousarray(bgr[..., ::-1]).round().astype(np.uint8))


def _hard_bits(riva, rgb: np.ndarray) -> list[int]:
    """The decoder's bits without any repair: the write-time check wants every bit right by itself."""
    return [int(v > 0) for v in riva.decoder.run(None, {"frame": _to_frame(rgb)})[0][0]]


def _encode(riva, rgb: np.ndarray, bits: list[int]) -> np.ndarray:
    marked = riva.encoder.run(None, {"frame": _to_frame(rgb), "data": np.array([bits], dtype=np.float32)})[0]
    bgr = (np.clip(marked[0, :, 0].transpose(1, 2, 0), -1, 1) + 1) * 127.5
    return np.ascontiguousarray(bgr[:, :, ::-1]).round().astype(np.uint8)


def _read(
    riva, image: Image.Image | np.ndarray, size: tuple[int, int] | None = None, scale: str = "as-is"
) -> Detection:
    array = np.asarray(image.resize(size, Image.BICUBIC)) if size else np.asarray(image)
    logits = riva.decoder.run(None, {"frame": _to_frame(array)})[0][0]
    bits, crc_ok = chase_decode(logits)
    work_id, _ = parse_payload(bits)
    confidence = float(np.abs(logits).mean())
    found = crc_ok and confidence >= CONFIDENCE_THRESHOLD
    return Detection(work_id if found else None, bits, round(confidence, 3), crc_ok, scale)


def detect(image: Image.Image, original_size: tuple[int, int] | None = None,
           crop_guesses: tuple[float, ...] = ()) -> Detection:  # fmt: skip
    """Read the mark from ``image`` (any copy: re-encoded, resized, cropped, recoloured).

    Tries the working size of the image as it is (a resized copy); then, when ``original_size``
    is known and differs, the scale the original had (a cropped copy); then, for each fraction
    in ``crop_guesses``, the scale of a crop to that fraction of each side (a copy whose record
    was stripped). Stops at the first reading whose checksum holds; else returns the most
    confident. Every extra reading is another chance for noise to pass the checksum, so guesses
    are opt-in.
    """
    riva = _models()
    rgb = image.convert("RGB")
    scales: list[tuple[float, str]] = [(WORK_SIDE / max(rgb.size), "as-is")]
    if original_size and tuple(original_size) != rgb.size:
        scales.append((max(work_size(tuple(original_size))) / max(original_size), "original-scale"))
    scales += [(WORK_SIDE * keep / max(rgb.size), f"crop-{keep:g}") for keep in crop_guesses]
    readings = []
    for factor, label in scales:
        size = tuple(max(MIN_WORK_SHORT_SIDE, round(side * factor)) for side in rgb.size)
        readings.append(_read(riva, rgb, size, label))
        if readings[-1].work_id is not None:
            return readings[-1]
    return max(readings, key=lambda r: r.confidence)
