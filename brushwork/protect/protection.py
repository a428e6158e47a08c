"""What the output exit calls: mark the pixels before writing, add provenance and register after.

``brushwork.output.save_output(..., protection=Protection())`` runs :meth:`Protection.before_write_many`,
:meth:`Protection.seal` and :meth:`Protection.after_write_many` (``save_outputs`` a batch at a time);
``brushwork.output.save_clip`` (MP4, GIF) runs
:meth:`Protection.start_clip`, whose marker marks every frame, and the same ``after_write``. The
watermark, the IPTC tag and the C2PA signature are on by default (this computer's signing key is made
on first use); every choice, opt-outs included, is written into the record's ``extra["protection"]``.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from brushwork.protect import provenance, watermark
from brushwork.protect.clips import ClipMarker, as_stored, is_clip, representative_frame
from brushwork.protect.registry import Entry, Registry, perceptual_hash
from brushwork.records import Record, sha256_file

#: Fresh work IDs tried when a picture will not carry the first one.
ID_RETRIES = 3
#: A picture whose short side is under this cannot carry 32 bits robustly (RivaGAN shrinks it 8x, and
#: its working copy would be stretched from almost nothing): the first JPEG or WebP re-encode removes
#: the mark (``benchmarks/watermark_small.py``).
MIN_MARK_SIDE = 128
#: Still outputs from this side up to MIN_MARK_SIDE, written losslessly (PNG, TIFF), still carry a mark,
#: noted as fragile: it survives lossless copies (a metadata-stripping re-save keeps the pixels). 48 and
#: 64 px pictures carry 84-96 % of IDs, so a refused one is tried with ID_RETRIES fresh IDs at once. 32 px
#: ones carry only 56 %, and a mark that small is hardly one: under 48 px a picture is not marked, and
#: the record says so.
MIN_FRAGILE_SIDE = 48
LOSSLESS_SUFFIXES = (".png", ".tif", ".tiff")
#: Bounds of a public preview's long side: big enough to show, small enough not to be the original.
PREVIEW_SIDES = (64, 4096)
#: The preview's long side when none is asked for (or half the original's long side, if that is smaller).
DEFAULT_PREVIEW_SIDE = 1024
WATERMARK_SCHEME = f"rivagan-{watermark.WORK_SIDE}px-id{watermark.ID_BITS}-crc{watermark.CRC_BITS}"


@dataclass
class Protection:
    """Protection settings; one object serves any number of outputs (each gets its own work ID).

    ``keys``: None = this computer's keys, made on first use (:func:`provenance.local_keys`).
    ``work_id``: None = a fresh random ID per output; set it to give one work a chosen ID.
    ``last_work_id``: the latest output's; ``last_clip``: the latest clip's frame marker (frames
    marked, frames whose payload read back).

    An output is one transaction: :meth:`before_write` reserves its ID and marks the pixels,
    :meth:`seal` tags and signs the encoded bytes (nothing is on disk yet), the output exit publishes
    them, and :meth:`after_write` registers the file; :meth:`abandon` gives the ID back when any step
    fails. The ``_many`` forms do the same for a batch: one ONNX call per step of the watermark's
    strength search, one registry transaction to reserve, one to register.
    """

    watermark: bool = True
    provenance: bool = True
    register: bool = True
    keys: provenance.Keys | None = None
    registry: Registry = field(default_factory=Registry)
    work_id: int | None = None
    last_work_id: int | None = field(default=None, init=False)
    last_clip: ClipMarker | None = field(default=None, init=False)
    #: What :meth:`seal` found for each output on its way out (its registry entry), by ``id(record)``.
    _sealed: dict = field(default_factory=dict, init=False, repr=False)
    #: While :meth:`keeping` a work: its ID, whether the picture already carries it, the source file.
    _kept: dict | None = field(default=None, init=False, repr=False)
    _looked_for_local_keys: bool = field(default=False, init=False, repr=False)

    @contextmanager
    def keeping(self, work_id: int | None, marked: bool, parent: Path) -> Iterator[None]:
        """Protect a new file of an existing work (``protect`` on a brushwork output): it keeps the work's
        ``work_id`` (its registry row, if here, is updated, not duplicated), is not marked again when
        ``marked`` (the picture already carries that ID), and names ``parent`` as its C2PA parent.
        ``work_id`` None: only the parent."""
        saved, self._kept = self.work_id, {"work_id": work_id, "marked": marked, "parent": Path(parent)}
        self.work_id = work_id if work_id is not None else saved
        try:
            yield
        finally:
            self.work_id, self._kept = saved, None

    def __post_init__(self) -> None:
        if self.provenance and self.keys is not None:
            provenance.check_keys(self.keys)  # a bad or mismatched key fails before anything is reserved

    def signing_keys(self) -> provenance.Keys | None:
        """The keys outputs are signed with: the given ones, or this computer's, made (and announced) on the
        first output that is protected, not before, so a run refused for its inputs makes none."""
        if self.provenance and self.keys is None and not self._looked_for_local_keys:
            self._looked_for_local_keys = True
            self.keys = provenance.local_keys()  # signed by default
        return self.keys if self.provenance else None

    def before_write(self, image: Image.Image, record: Record, path: Path | None = None) -> Image.Image:
        return self.before_write_many([image], [record], [path])[0]

    def before_write_many(self, images: list[Image.Image], records: list[Record],
                          paths: list[Path | None]) -> list[Image.Image]:  # fmt: skip
        """:meth:`before_write` for a batch: the IDs reserved in one transaction, the marks made together."""
        ids = self._reserve(len(images))
        notes = []
        try:
            for image, record, path, work_id in zip(images, records, paths, ids, strict=True):
                lossless = path is not None and Path(path).suffix.lower() in LOSSLESS_SUFFIXES
                notes.append(self._begin(record, image.size, MIN_FRAGILE_SIDE if lossless else MIN_MARK_SIDE, work_id))
            if self._kept is not None and self._kept["marked"]:
                for note in notes:
                    if note["watermark"]:
                        note["watermark_kept"] = f"the picture already carries work {note['work_id']}: not marked again"
            todo = [i for i, note in enumerate(notes) if note["watermark"] and "watermark_kept" not in note]
            out = list(images)
            marked = watermark.embed_many([images[i] for i in todo], [notes[i]["work_id"] for i in todo])
            refused = []
            for i, (picture, ok, _) in zip(todo, marked, strict=True):
                notes[i]["watermark_reads_back"] = ok
                out[i] = picture
                if not ok:
                    refused.append(i)
            if refused and self.work_id is None and not (self._kept and self._kept["work_id"]):
                self._mark_with_fresh_ids(images, out, notes, refused)
            for note in notes:
                if "watermark_kept" in note:
                    note["watermark_reads_back"] = True
        except BaseException:
            if self.register:
                self.registry.release(*{w for w in [*ids, *(n["work_id"] for n in notes)] if w is not None})
            raise
        self.last_work_id = notes[-1]["work_id"] if notes else self.last_work_id
        return out

    def _mark_with_fresh_ids(self, images: list[Image.Image], out: list[Image.Image], notes: list[dict],
                             refused: list[int]) -> None:  # fmt: skip
        """A few pictures will not carry some payloads; another usually does. Each refused picture is
        marked with :data:`ID_RETRIES` fresh IDs in one batched search (a candidate costs about what one
        more picture in the batch does), and keeps the first that reads back; the other IDs go back."""
        fresh = self.registry.reserve_many(ID_RETRIES * len(refused)) if self.register else [
            _random_id() for _ in range(ID_RETRIES * len(refused))]  # fmt: skip
        tries = watermark.embed_many([images[i] for i in refused for _ in range(ID_RETRIES)], fresh)
        unused = []
        for k, i in enumerate(refused):
            candidates = list(zip(fresh[k * ID_RETRIES:(k + 1) * ID_RETRIES],
                                  tries[k * ID_RETRIES:(k + 1) * ID_RETRIES], strict=True))  # fmt: skip
            chosen = next(((w, picture) for w, (picture, ok, _) in candidates if ok), None)
            unused += [w for w, _ in candidates if chosen is None or w != chosen[0]]
            if chosen is not None:
                unused.append(notes[i]["work_id"])
                notes[i].update(work_id=chosen[0], watermark_reads_back=True)
                out[i] = chosen[1]
        if self.register:
            self.registry.release(*unused)

    def _reserve(self, count: int) -> list[int | None]:
        if not self.register:
            return [self.work_id] * count
        if self._kept is not None and self._kept["work_id"] is not None:
            return [self.registry.reserve_many(1, self.work_id, existing_ok=True)[0] for _ in range(count)]
        if self.work_id is not None:
            return [self.registry.reserve(self.work_id) for _ in range(count)]
        return self.registry.reserve_many(count)

    def start_clip(self, record: Record, first_frame: Image.Image, path: Path) -> ClipMarker | None:
        """Protect a clip (MP4, GIF) to be written to ``path`` that starts with ``first_frame``: note it
        in ``record`` and return what marks every frame with the clip's one work ID (None when the
        clip is not marked). The ID is chosen as a still's is, on the first frame; every frame must
        carry it as the format will store it (:func:`clips.as_stored`), and how many did is in
        :attr:`last_clip`. The C2PA manifest states the IPTC source type (MP4 and GIF hold no XMP here)."""
        note = self._begin(record, first_frame.size, MIN_MARK_SIDE, self._reserve(1)[0])
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

    def _mark_choosing_id(self, image: Image.Image, note: dict, survive) -> tuple[Image.Image, watermark.Strength]:
        """A clip's first frame marked with the noted work ID, and how hard; when it will not carry that one
        and the ID is ours to choose, with a fresh one. The ID used and whether it read back (from
        ``survive(marked)``) go into ``note``."""
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

    def _begin(self, record: Record, size: tuple[int, int], smallest: int, work_id: int | None) -> dict:
        """Write into ``record`` what this output will carry (a mark from a short side of ``smallest`` px
        up), with its reserved ``work_id``; ``opted_out`` lists only the user's choices (no keys is not a
        choice). Registered even unmarked: the perceptual hash still finds it."""
        note: dict = {"watermark": None, "iptc": self.provenance, "c2pa": bool(self.signing_keys()),
                      "registered": self.register, "opted_out": []}  # fmt: skip
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
        self.abandon_many([record])

    def abandon_many(self, records: list[Record]) -> None:
        ids = [(r.extra.get("protection") or {}).get("work_id") for r in records]
        for record in records:
            self._sealed.pop(id(record), None)
        if self.register:
            self.registry.release(*[w for w in ids if w is not None])

    def seal(self, data: bytes, record: Record, path: Path) -> bytes:
        """The encoded output ``data`` (to be written to ``path``) tagged and signed; what its registry
        entry needs is kept for :meth:`after_write`. Nothing touches the disk."""
        if self.provenance:
            parent = self._kept["parent"] if self._kept is not None else None
            data = provenance.provenance_bytes(data, path, record, self.signing_keys(), source_type=True, parent=parent)
        phash = None
        if self.register:
            with Image.open(io.BytesIO(data)) as written:
                phash = perceptual_hash(written)
        # The manifest store is not read back here (40 % of the cost of sealing a small picture): the
        # registry's bundle export reads it from the registered file (registry.export_bundle).
        self._sealed[id(record)] = (record, phash, None, hashlib.sha256(data).hexdigest())
        return data

    def after_write(self, path: Path, record: Record) -> None:
        """Register the written file (an image :meth:`seal` sealed); a clip that :meth:`start_clip` began
        is signed in place first."""
        self.after_write_many([path], [record])

    def after_write_many(self, paths: list[Path], records: list[Record],
                         originals: list[str | None] | None = None) -> None:  # fmt: skip
        """:meth:`after_write` for a batch: one registry transaction for all of them. ``originals``: the
        SHA-256 of each one's private original, where the file is its public preview."""
        entries = []
        originals = originals or [None] * len(paths)
        for path, record, original in zip(paths, records, originals, strict=True):
            sealed = self._sealed.pop(id(record), None)
            if sealed is None or sealed[0] is not record:  # a clip, written by its own writer: sign it now
                if self.provenance:
                    provenance.add_provenance(path, record, self.signing_keys(), source_type=True)
                if not self.register:
                    continue
                if is_clip(path):
                    phash = perceptual_hash(representative_frame(path))
                else:
                    with Image.open(path) as written:
                        phash = perceptual_hash(written)
                manifest = provenance.manifest_store(path) if self.signing_keys() else None
                sealed = (record, phash, manifest, sha256_file(path))
            if self.register:
                _, phash, manifest, digest = sealed
                work_id = record.extra["protection"]["work_id"]
                preview = None if original is None else digest
                entries.append(Entry(work_id, path, original or digest, phash, record.to_dict(), manifest, preview))
        if entries:
            self.registry.register_many(entries)


def _random_id() -> int:
    import secrets

    return secrets.randbelow(watermark.MAX_WORK_ID) + 1


def default_protection(no_watermark: bool = False, no_provenance: bool = False,
                       registry: str | os.PathLike | None = None) -> Protection:  # fmt: skip
    """The protection the CLI gives every output unless told otherwise."""
    return Protection(watermark=not no_watermark, provenance=not no_provenance, registry=Registry(registry))


def preview_size(size: tuple[int, int], asked: int | None, encrypt: bool) -> int | None:
    """The long side of the published copy (None: full size). With ``encrypt`` the copy is a preview of a
    private original, so it must be smaller than the original: a "preview" as big as it would publish
    the very thing the vault keeps private."""
    from brushwork.errors import BrushworkError

    low, high = PREVIEW_SIDES
    if asked is not None and not low <= asked <= high:
        raise BrushworkError(f"--preview-size must be between {low} and {high} px, not {asked}")
    long_side = max(size)
    if not encrypt:
        return asked if asked is not None and asked < long_side else None
    side = asked if asked is not None else min(DEFAULT_PREVIEW_SIDE, long_side // 2)
    if side >= long_side or side < low:
        raise BrushworkError(
            f"a {side} px preview of a {long_side} px original is not smaller than it: the preview would "
            f"publish the original (choose --preview-size under {long_side}, at least {low})"
            if side >= long_side
            else f"the original ({long_side} px) is too small for a preview of at least {low} px that is smaller"
        )
    return side


def protect_image(source: str | os.PathLike, output: str | os.PathLike, *, protection: Protection,
                  encrypt: bool = False, vault_dir: str | os.PathLike | None = None, passphrase: str | None = None,
                  preview_side: int | None = None, force: bool = False) -> dict:  # fmt: skip
    """Write a protected copy of ``source`` to ``output`` (watermarked, signed, registered).

    With ``encrypt`` the copy is a public preview (long side ``preview_side``; see :func:`preview_size`)
    and the original goes, byte for byte and encrypted, into ``vault_dir``; the registry keeps the
    SHA-256 of both. One transaction: the work ID is reserved, the preview marked and signed and the
    original encrypted in memory, then both files are published and the work registered; any failure
    (an unwritable vault, a key that cannot sign, a full disk) leaves neither file nor registry row.
    Returns what was written.
    """
    from brushwork.errors import BrushworkError
    from brushwork.files import atomic_write, check_output_path, write_error
    from brushwork.media import load_image, resize_long_side
    from brushwork.output import published_or_nothing
    from brushwork.protect import vault
    from brushwork.records import IMAGE_SUFFIXES, encode_image

    source = Path(source)
    image = load_image(source)
    if encrypt and passphrase is None:
        raise BrushworkError("encrypting needs a passphrase")
    side = preview_size(image.size, preview_side, encrypt)
    if side is not None:
        image = resize_long_side(image, side)
    record, work_id = _protect_record(source, {"encrypt": encrypt, "preview_side": preview_side})
    output = check_output_path(output, force, tuple(IMAGE_SUFFIXES))
    locked, sealed, original_sha = None, None, None
    if encrypt:  # everything about the vault is checked, and the original encrypted, before anything is written
        vault_dir = Path(vault_dir) if vault_dir else protection.registry.path.parent / "vault"
        try:
            vault_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise write_error(vault_dir, exc) from exc
        if not os.access(vault_dir, os.W_OK | os.X_OK):
            raise BrushworkError(f"{vault_dir}: could not write (permission denied); nothing was written")
        locked = check_output_path(vault_dir / f"{source.stem}{vault.SUFFIX}", force, vault.SUFFIX)
        original = source.read_bytes()
        sealed, original_sha = vault.seal(source.name, original, passphrase), hashlib.sha256(original).hexdigest()
    if work_id is not None and protection.work_id is None:  # keep the work's ID (and its mark, if it reads)
        carried = protection.watermark and watermark.detect(image).work_id == work_id
        keeping = protection.keeping(work_id, carried, source)
    else:
        keeping = protection.keeping(None, False, source)
    with keeping:
        marked = protection.before_write_many([image], [record], [output])[0]
        written: list[Path] = []
        with published_or_nothing(protection, [record], written):
            if record.finished is None:
                record.finish()
            data = protection.seal(encode_image(marked, output, record), record, output)
            if sealed is not None:
                written.append(atomic_write(locked, lambda tmp: Path(tmp).write_bytes(sealed)))
            written.append(atomic_write(output, lambda tmp: Path(tmp).write_bytes(data)))
            protection.after_write_many([output], [record], originals=[original_sha])
    work_id = record.extra["protection"]["work_id"]
    return {"output": str(output), "work_id": work_id, "vault": str(locked) if locked else None}


def _protect_record(source: Path, how: dict) -> tuple[Record, int | None]:
    """The record of ``protect``'s copy of ``source``, and the work ID to keep. A brushwork output keeps
    its own record (engine, parameters, inputs: how it was made, which the infotext shows), with what
    ``protect`` did in ``extra["protected"]`` and the earlier protection note there too; its work ID is
    the one its record names or, stripped of its record, the one its watermark carries. Anything else
    gets a fresh ``protect`` record. Either way the source is the C2PA parent ingredient."""
    from brushwork.errors import BrushworkError
    from brushwork.media import load_image
    from brushwork.records import describe_input, new_record, read_record

    protected = {"by": "brushwork protect", **how, "source": describe_input(source)}
    try:
        record = read_record(source)
    except BrushworkError:
        record = None
    if record is not None:
        earlier = record.extra.pop("protection", None) or {}
        protected["source_protection"] = earlier or None
        record.extra["protected"] = protected
        work_id = earlier.get("work_id")
        if work_id is not None:
            return record, work_id
    else:
        record = new_record("protect", how, inputs={"original": describe_input(source)},
                            extra={"protected": protected})  # fmt: skip
    return record, watermark.detect(load_image(source)).work_id
