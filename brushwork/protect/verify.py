"""``verify``: read every protection a file carries and say whether it is an intact brushwork output.

Evidence, strongest first:

* a C2PA manifest: its hashes bind the exact bytes, so 'valid'/'trusted' means untouched since
  signing and 'tampered' means changed after;
* the registry: the SHA-256 recorded when the file was written;
* the watermark: survives edits, so it says *which* work a modified copy came from;
* the XMP source type and the brushwork record: claims anyone can copy, reported, never trusted.

"Intact" promises: the bytes are exactly those signed by a key that chains to a CA trusted here (this
computer's own brushwork CA, or one given with ``--trust``), or, unsigned, exactly those this
computer's registry recorded when it wrote the file. A valid signature from any other CA is
:data:`UNTRUSTED`, never intact: anyone can make a CA.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from brushwork.errors import BrushworkError
from brushwork.media import load_image
from brushwork.protect import clips, provenance, watermark
from brushwork.protect.registry import Registry
from brushwork.records import read_record, sha256_file

INTACT, MODIFIED, UNKNOWN = "intact brushwork output", "modified brushwork output", "unknown"
#: A signature that holds but chains to no CA trusted here: anyone can make a CA (``keys init`` does),
#: so it proves the bytes are unchanged since *someone* signed them, not that brushwork's owner did.
UNTRUSTED = "signed by a signer not trusted here"


@dataclass
class Report:
    path: str
    verdict: str
    reasons: list[str] = field(default_factory=list)
    watermark: dict | None = None
    manifest: dict | None = None
    registry: dict | None = None
    source_type: str | None = None
    record: dict | None = None

    def to_dict(self) -> dict:
        return dict(self.__dict__)

    def line(self) -> str:
        return f"{self.path}: {self.verdict}" + (f" ({'; '.join(self.reasons)})" if self.reasons else "")


def _anchor_note(path: Path, anchors: list[str | os.PathLike] | None) -> str:
    """Say plainly when the trust comes only from this computer's own self-made CA."""
    if anchors and provenance.check_manifest(path, [Path(a) for a in anchors]).state == "trusted":
        return ""
    return (" (this computer's own brushwork CA: a self-made certificate, not a trusted public CA; it "
            "proves this computer's key signed the file, not who owns it)")  # fmt: skip


def verify(path: str | os.PathLike, anchors: list[str | os.PathLike] | None = None,
           registry: Registry | None = None) -> Report:  # fmt: skip
    """Everything ``path`` (an image, or an MP4/GIF clip) carries, and the verdict. A clip's watermark is
    read from a few frames spread over it (:func:`clips.detect_clip`: the ID most of them carry)."""
    path = Path(path)
    clip = clips.is_clip(path)
    frames = clips.sample_frames(path) if clip else [load_image(path)]
    registry = registry or Registry()
    try:
        record = read_record(path)
    except BrushworkError:
        record = None
    note = (record.extra.get("protection") or {}) if record else {}
    original_size = tuple(note["original_size"]) if note.get("original_size") else None
    # A copy stripped of its record has lost the original size: guess the usual crops instead.
    guesses = () if original_size else watermark.CROP_GUESSES
    if clip:
        reading = clips.detect_clip(frames, original_size, guesses)
    else:
        reading = watermark.detect(frames[0], original_size, guesses)
    check = provenance.check_manifest(path, provenance.trust_anchors(anchors))
    work_id = reading.work_id if reading.work_id is not None else check.work_id
    work = registry.get(work_id) if work_id is not None else None
    report = Report(
        str(path),
        UNKNOWN,
        watermark=reading.to_dict(),
        manifest=check.to_dict(),
        registry=work.to_dict() if work else None,
        source_type=provenance.read_source_type(path) or check.source_type,
        record=record.to_dict() if record else None,
    )
    reasons = report.reasons
    if clip and not frames:
        reasons.append("no frame could be decoded to read a watermark from (damaged video data)")
    if check.state == "trusted":
        reasons.append("C2PA signature valid, signer trusted here" + _anchor_note(path, anchors))
    elif check.state == "valid":
        reasons.append(f"C2PA signature valid, but its signer ({check.signer or 'unnamed'}) chains to no CA trusted "
                       "here; if you know it, pass its CA with --trust")  # fmt: skip
    elif check.state == "tampered":
        reasons.append("C2PA manifest does not match the file: changed after signing")
    if reading.work_id is not None:
        frames_note = f" in {reading.frames_agreeing} of {reading.frames_read} frames read" if clip else ""
        reasons.append(f"watermark reads work {reading.work_id}{frames_note}")
        if check.work_id is not None and check.work_id != reading.work_id:
            reasons.append(f"but the manifest names work {check.work_id}")
    same_bytes = work is not None and sha256_file(path) in (work.sha256, work.preview_sha256)
    if work is not None:
        reasons.append(
            "registered, file unchanged" if same_bytes else "registered, file differs from the registered one"
        )
    if check.state == "trusted" or (check.state == "absent" and same_bytes):
        report.verdict = INTACT
    elif check.state == "tampered" or (check.state != "valid" and (reading.work_id is not None or work is not None)):
        report.verdict = MODIFIED
    elif check.state == "valid":
        report.verdict = UNTRUSTED
    elif record is not None:
        reasons.append("carries a brushwork record, but no watermark or signature to check it against")
    return report
