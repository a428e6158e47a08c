"""What the output exit calls: mark the pixels before writing, add provenance and register after.

``brushwork.output.save_output(..., protection=Protection())`` runs :meth:`Protection.before_write`
and :meth:`Protection.after_write`; ``brushwork.output.save_clip`` (MP4, GIF) runs
:meth:`Protection.start_clip`, whose marker marks every frame, and the same ``after_write``. The
watermark is on by default; the IPTC tag and the C2PA signature come once keys exist (``brushwork
keys init``); every choice, opt-outs included, is written into the record's ``extra["protection"]``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from brushwork.protect import provenance, watermark
from brushwork.protect.clips import ClipMarker, as_stored, is_clip, representative_frame
from brushwork.protect.registry import Registry, perceptual_hash
from brushwork.records import Record, sha256_file

#: Fresh work IDs tried when a picture will not carry the first one.
ID_RETRIES = 3
#: A picture whose short side is under this cannot carry 32 bits robustly (RivaGAN shrinks it 8x, and
#: its working copy would be stretched from almost nothing): the first JPEG or WebP re-encode removes
#: the mark (``benchmarks/watermark_small.py``).
MIN_MARK_SIDE = 128
#: Still outputs from this side up to MIN_MARK_SIDE, written losslessly (PNG, TIFF), still carry a mark,
#: noted as fragile: it survives lossless copies (a metadata-stripping re-save keeps the pixels); 48 and
#: 64 px pictures read back 96 % of the time, 32 px ones 56 % per ID tried. Clips and lossy stills don't.
MIN_FRAGILE_SIDE = 32
LOSSLESS_SUFFIXES = (".png", ".tif", ".tiff")
WATERMARK_SCHEME = f"rivagan-{watermark.WORK_SIDE}px-id{watermark.ID_BITS}-crc{watermark.CRC_BITS}"


@dataclass
class Protection:
    """Protection settings; one object serves any number of outputs (each gets its own work ID).

    ``keys``: None = the local keys if ``keys init`` made them. ``work_id``: None = a fresh
    random ID per output; set it to give one work a chosen ID. ``last_work_id``: the latest output's;
    ``last_clip``: the latest clip's frame marker (frames marked, frames whose payload read back).
    """

    watermark: bool = True
    provenance: bool = True
    register: bool = True
    keys: provenance.Keys | None = None
    registry: Registry = field(default_factory=Registry)
    work_id: int | None = None
    last_work_id: int | None = field(default=None, init=False)
    last_clip: ClipMarker | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        if self.provenance and self.keys is None:
            self.keys = provenance.find_keys()

    def before_write(self, image: Image.Image, record: Record, path: Path | None = None) -> Image.Image:
        lossless = path is not None and Path(path).suffix.lower() in LOSSLESS_SUFFIXES
        note = self._begin(record, image.size, MIN_FRAGILE_SIDE if lossless else MIN_MARK_SIDE)
        return self._mark_choosing_id(image, note)[0] if note["watermark"] else image

    def start_clip(self, record: Record, first_frame: Image.Image, path: Path) -> ClipMarker | None:
        """Protect a clip (MP4, GIF) to be written to ``path`` that starts with ``first_frame``: note it
        in ``record`` and return what marks every frame with the clip's one work ID (None when the
        clip is not marked). The ID is chosen as a still's is, on the first frame; every frame must
        carry it as the format will store it (:func:`clips.as_stored`), and how many did is in
        :attr:`last_clip`. The C2PA manifest states the IPTC source type (MP4 and GIF hold no XMP here)."""
        note = self._begin(record, first_frame.size, MIN_MARK_SIDE)
        note["iptc"] = False
        note["source_type_in"] = "c2pa" if note["c2pa"] else None
        self.last_clip = None
        if note["watermark"]:
            survive = as_stored(path)
            marked, strength = self._mark_choosing_id(first_frame, note, survive)
            note["watermark_frames"] = "every frame"
            marker = ClipMarker(note["work_id"], survive)
            self.last_clip = marker.starting_with(first_frame, marked, note["watermark_reads_back"], strength)
        return self.last_clip

    def _mark_choosing_id(self, image: Image.Image, note: dict,
                          survive=None) -> tuple[Image.Image, watermark.Strength]:  # fmt: skip
        """``image`` marked with the noted work ID, and how hard; when it will not carry that one and the
        ID is ours to choose, with a fresh one (a few pictures will not carry some payloads; another
        usually does). The ID used and whether it read back (from ``survive(marked)``) go into ``note``."""
        work_id = note["work_id"]
        marked, ok, strength = watermark.embed_hinted(image, work_id, survive=survive)
        for _ in range(ID_RETRIES if self.work_id is None else 0):
            if ok:
                break
            if self.register:
                self.registry.release(work_id)
            work_id = self.registry.reserve() if self.register else _random_id()
            marked, ok, strength = watermark.embed_hinted(image, work_id, survive=survive)
        note.update(work_id=work_id, watermark_reads_back=ok)
        self.last_work_id = work_id
        return marked, strength

    def _begin(self, record: Record, size: tuple[int, int], smallest: int) -> dict:
        """Reserve the work ID and write into ``record`` what this output will carry (a mark from a short
        side of ``smallest`` px up); ``opted_out`` lists only the user's choices (no keys is not a choice)."""
        note: dict = {"watermark": None, "iptc": self.provenance, "c2pa": bool(self.provenance and self.keys),
                      "registered": self.register, "opted_out": []}  # fmt: skip
        work_id = self.work_id
        if self.register:  # registered even unmarked: the perceptual hash still finds it
            work_id = self.registry.reserve(work_id)
        if self.watermark and min(size) < smallest:
            note["watermark_skipped"] = f"too small to carry a watermark (under {smallest} px)"
        elif self.watermark:
            work_id = work_id if work_id is not None else _random_id()
            note.update(watermark=WATERMARK_SCHEME, original_size=list(size))
            if min(size) < MIN_MARK_SIDE:
                note["watermark_fragile"] = (f"under {MIN_MARK_SIDE} px: the mark survives lossless copies only, "
                                             "not a JPEG or WebP re-encode")  # fmt: skip
        else:
            note["opted_out"].append("watermark")
        note["work_id"] = self.last_work_id = work_id
        if not self.provenance:
            note["opted_out"].append("provenance")
        if not self.register:
            note["opted_out"].append("registry")
        record.extra["protection"] = note
        return note

    def abandon(self, record: Record) -> None:
        """The output was not written (an error, a cancelled job, a kill of the writer): give back the work
        ID reserved for it, so the registry keeps no entry for a work that does not exist."""
        work_id = (record.extra.get("protection") or {}).get("work_id")
        if self.register and work_id is not None:
            self.registry.release(work_id)

    def after_write(self, path: Path, record: Record) -> None:
        """Sign (and tag) the written file and register it: an image, or a clip that :meth:`start_clip` began."""
        if self.provenance:
            provenance.add_provenance(path, record, self.keys, source_type=True)
        if self.register:
            if is_clip(path):
                phash = perceptual_hash(representative_frame(path))
            else:
                with Image.open(path) as written:
                    phash = perceptual_hash(written)
            manifest = provenance.manifest_store(path) if self.keys else None
            work_id = record.extra["protection"]["work_id"]
            self.registry.register(work_id, path, sha256_file(path), phash, record.to_dict(), manifest)


def _random_id() -> int:
    import secrets

    return secrets.randbelow(watermark.MAX_WORK_ID) + 1


def default_protection(no_watermark: bool = False, no_provenance: bool = False,
                       registry: str | os.PathLike | None = None) -> Protection:  # fmt: skip
    """The protection the CLI gives every output unless told otherwise."""
    return Protection(watermark=not no_watermark, provenance=not no_provenance, registry=Registry(registry))


def protect_image(source: str | os.PathLike, output: str | os.PathLike, *, protection: Protection,
                  encrypt: bool = False, vault_dir: str | os.PathLike | None = None, passphrase: str | None = None,
                  preview_side: int | None = None, force: bool = False) -> dict:  # fmt: skip
    """Write a protected copy of ``source`` to ``output`` (watermarked, signed, registered).

    With ``encrypt`` the copy is a public preview (long side ``preview_side``, default 1024) and
    the original goes, byte for byte and encrypted, into ``vault_dir``; the registry keeps the
    SHA-256 of both. Returns what was written.
    """
    from brushwork.errors import BrushworkError
    from brushwork.media import load_image, resize_long_side
    from brushwork.output import save_output
    from brushwork.protect import vault
    from brushwork.records import describe_input, new_record, read_record

    source = Path(source)
    image = load_image(source)
    if encrypt:
        if passphrase is None:
            raise BrushworkError("encrypting needs a passphrase")
        side = preview_side or 1024
        if max(image.size) > side:
            image = resize_long_side(image, side)
    elif preview_side:
        image = resize_long_side(image, min(preview_side, max(image.size)))
    try:
        source_record = read_record(source).to_dict()
    except BrushworkError:
        source_record = None
    record = new_record("protect", {"encrypt": encrypt, "preview_side": preview_side},
                        inputs={"original": describe_input(source)},
                        extra={"source_record": source_record} if source_record else None)  # fmt: skip
    vault_dir = Path(vault_dir) if vault_dir else protection.registry.path.parent / "vault"
    if encrypt:  # refuse before writing anything
        check = vault_dir / f"{source.stem}{vault.SUFFIX}"
        if check.exists() and not force:
            raise BrushworkError(f"{check}: already exists; use --force to overwrite")
    written = save_output(image, output, record, force=force, protection=protection)
    work_id = protection.last_work_id
    result = {"output": str(written), "work_id": work_id, "vault": None}
    if encrypt:
        locked = vault.lock_file(source, vault_dir, passphrase, force=force)
        result["vault"] = str(locked)
        if protection.register:
            work = protection.registry.get(work_id)
            protection.registry.register(work_id, written, sha256_file(source), work.phash, work.record,
                                         work.manifest, preview_sha256=sha256_file(written))  # fmt: skip
    return result
