"""Protect end to end: keys, IPTC + C2PA provenance, verify's verdicts, the vault, the registry, the output exit."""

from __future__ import annotations

import json
import os
import sqlite3
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("imwatermark")
pytest.importorskip("c2pa")
pytest.importorskip("pyexiv2")

from brushwork.cli import main  # noqa: E402
from brushwork.errors import BrushworkError  # noqa: E402
from brushwork.output import save_output  # noqa: E402
from brushwork.protect import Protection, Registry, export_bundle, init_keys, protect_image, verify  # noqa: E402
from brushwork.protect.provenance import SOURCE_TYPE, check_manifest, read_source_type  # noqa: E402
from brushwork.protect.vault import open_sealed, seal, unlock_file  # noqa: E402
from brushwork.records import new_record, read_record  # noqa: E402

EXAMPLES = Path(__file__).resolve().parents[1] / "brushwork" / "examples"
INTACT, MODIFIED, UNKNOWN = "intact brushwork output", "modified brushwork output", "unknown"
UNTRUSTED = "signed by a signer not trusted here"


@pytest.fixture
def home(tmp_path, monkeypatch):
    """Keys, registry and vault in a fresh folder; no passphrase in the environment."""
    monkeypatch.setenv("BRUSHWORK_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("BRUSHWORK_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("BRUSHWORK_PASSPHRASE", raising=False)
    return tmp_path


@pytest.fixture
def photo(tmp_path) -> Path:
    image = Image.open(EXAMPLES / "tubingen.jpg").convert("RGB").resize((384, 288), Image.BICUBIC)
    path = tmp_path / "photo.jpg"
    image.save(path, quality=95)
    return path


def _protected(home, photo, **options) -> Path:
    """A protected copy of ``photo``; a fixed work ID keeps the watermark's pixels (and the test) deterministic."""
    init_keys()
    options.setdefault("work_id", 0x2B5E7)
    out = home / "out.png"
    protect_image(photo, out, protection=Protection(**options))
    return out


def test_keys_are_private_and_never_overwritten(home):
    keys = init_keys()
    assert oct(keys.key.stat().st_mode & 0o777) == "0o600"
    assert oct((keys.key.parent / "ca-key.pem").stat().st_mode & 0o777) == "0o600"
    before = keys.key.read_bytes()
    with pytest.raises(BrushworkError, match="--force"):
        init_keys()
    assert keys.key.read_bytes() == before
    assert init_keys(force=True).key.read_bytes() != before


def test_protected_output_is_intact_signed_tagged_and_registered(home, photo):
    out = _protected(home, photo)
    report = verify(out)
    assert report.verdict == INTACT, report.reasons
    assert report.manifest["state"] == "trusted"
    assert report.source_type == SOURCE_TYPE == read_source_type(out)
    work_id = report.watermark["work_id"]
    assert work_id is not None and report.manifest["work_id"] == work_id
    assert report.registry["id"] == work_id
    assert read_record(out).extra["protection"]["work_id"] == work_id  # the record survived XMP + signing
    assert Image.open(out).size == (384, 288)


def test_signature_without_the_trust_anchor_is_valid_not_trusted(home, photo, monkeypatch):
    out = _protected(home, photo)
    assert main(["verify", str(out), "--trust", str(home / "missing.pem")]) == 2
    assert main(["verify", str(out), "--trust", str(photo)]) == 2
    ca = home / "config" / "keys" / "ca.pem"
    monkeypatch.setenv("BRUSHWORK_CONFIG_DIR", str(home / "elsewhere"))
    assert check_manifest(out).state == "valid"
    # Registered and byte-identical, but signed by a CA this computer does not trust: not intact.
    assert verify(out).verdict == UNTRUSTED
    assert main(["verify", str(out)]) == 1
    assert verify(out, [ca]).verdict == INTACT
    assert main(["verify", str(out), "--trust", str(ca)]) == 0


def test_a_strangers_keys_init_ca_does_not_make_a_file_intact(home, photo, capsys):
    """Anyone can run 'keys init': a file signed with such a CA is untrusted here until --trust names it."""
    stranger = init_keys(home / "stranger")  # the same names as this computer's CA would have, other keys
    forged = home / "forged.png"
    args = ["protect", str(photo), "-o", str(forged), "--cert", str(stranger.chain), "--key", str(stranger.key),
            "--no-register"]  # fmt: skip
    assert main(args) == 0
    report = verify(forged)
    assert report.manifest["state"] == "valid" and report.verdict == UNTRUSTED, report.line()
    capsys.readouterr()
    assert main(["verify", str(forged)]) == 1
    assert "not trusted" in capsys.readouterr().out
    assert main(["verify", str(forged), "--trust", str(stranger.anchors[0])]) == 0
    own = _protected(home, photo)
    assert main(["verify", str(own)]) == 0
    assert "self-made certificate, not a trusted public CA" in capsys.readouterr().out


@pytest.mark.parametrize("size", ["0", "-5", "63", "4097", "384", "1000"])
def test_a_preview_is_bounded_and_smaller_than_the_original(home, photo, monkeypatch, size):
    monkeypatch.setenv("BRUSHWORK_PASSPHRASE", "correct horse")
    preview = home / "preview.png"
    assert main(["protect", str(photo), "--encrypt", "--preview-size", size, "-o", str(preview)]) == 2
    assert not preview.exists() and not (home / "data" / "vault" / "photo.bwvault").exists()
    assert not (home / "data" / "registry.sqlite").exists() or not _registry_rows()


def test_the_default_preview_of_a_small_original_is_half_its_size(home, photo, monkeypatch):
    monkeypatch.setenv("BRUSHWORK_PASSPHRASE", "correct horse")
    preview = home / "preview.png"
    assert main(["protect", str(photo), "--encrypt", "-o", str(preview)]) == 0
    assert max(Image.open(preview).size) == 192  # the photo is 384 px: 1024 would have been the original


def _registry_rows() -> list:
    with sqlite3.connect(Registry().path) as db:
        return db.execute("SELECT id, state FROM works").fetchall()


def _png_chunks(path: Path) -> list[tuple[bytes, bytes]]:
    data, chunks, pos = path.read_bytes(), [], 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        chunks.append((data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]))
        pos += 12 + length
    return chunks


def _write_png_chunks(path: Path, chunks: list[tuple[bytes, bytes]]) -> None:
    out = [b"\x89PNG\r\n\x1a\n"]
    for kind, body in chunks:
        out.append(struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body)))
    path.write_bytes(b"".join(out))


def _tamper_png_pixels(path: Path) -> None:
    """Change pixels but keep every other chunk (the C2PA manifest included), as an editor that
    preserves metadata would."""
    chunks = _png_chunks(path)
    raw = bytearray(zlib.decompress(b"".join(body for kind, body in chunks if kind == b"IDAT")))
    stride = 1 + 384 * 3
    for row in range(100, 140):  # a visible smudge: 40 rows, 40 pixels wide
        for i in range(1 + 150 * 3, 1 + 190 * 3):
            raw[row * stride + i] = 255 - raw[row * stride + i]
    first = next(i for i, (kind, _) in enumerate(chunks) if kind == b"IDAT")
    kept = [c for c in chunks if c[0] != b"IDAT"]
    kept.insert(first, (b"IDAT", zlib.compress(bytes(raw))))
    _write_png_chunks(path, kept)


def test_a_changed_manifest_shows_as_tampered(home, photo):
    out = _protected(home, photo)
    chunks = _png_chunks(out)
    index = next(i for i, (kind, _) in enumerate(chunks) if kind == b"caBX")  # C2PA's PNG chunk
    body = bytearray(chunks[index][1])
    at = bytes(body).find(b"protect")  # the engine name inside our signed assertion
    assert at > 0
    body[at : at + 7] = b"PROTECT"
    chunks[index] = (b"caBX", bytes(body))
    _write_png_chunks(out, chunks)
    check = check_manifest(out)
    assert check.state == "tampered" and any("mismatch" in f for f in check.failures), check
    assert verify(out).verdict == MODIFIED


def test_pixels_changed_after_signing_show_as_tampered(home, photo):
    out = _protected(home, photo)
    _tamper_png_pixels(out)
    Image.open(out).load()  # still a valid PNG
    report = verify(out)
    assert report.manifest["state"] == "tampered"
    assert any("dataHash" in failure for failure in report.manifest["failures"])
    assert report.verdict == MODIFIED


def test_reencoded_copy_is_modified_and_found(home, photo):
    out = _protected(home, photo)
    copy = home / "copy.jpg"
    Image.open(out).convert("RGB").resize((300, 225), Image.BICUBIC).save(copy, quality=80)
    report = verify(copy)
    assert report.verdict == MODIFIED
    assert report.manifest["state"] == "absent"
    work, how, _ = Registry().find(Image.open(copy))
    assert how == "watermark" and work.id == report.watermark["work_id"]


def test_clean_image_is_unknown(home, photo):
    report = verify(photo)
    assert report.verdict == UNKNOWN
    assert report.watermark["work_id"] is None and report.manifest["state"] == "absent"
    assert main(["verify", str(photo)]) == 1


def test_registry_finds_by_perceptual_hash_without_watermark(home, photo):
    out = _protected(home, photo, watermark=False)
    note = read_record(out).extra["protection"]
    assert note["opted_out"] == ["watermark"] and note["watermark"] is None
    assert verify(out).watermark["work_id"] is None
    copy = Image.open(out).convert("RGB").resize((300, 225))
    work, how, distance = Registry().find(copy)
    assert how == "perceptual-hash" and work.path == str(out.resolve()) and distance <= 10
    stranger = Image.open(EXAMPLES / "starry_night.jpg").convert("RGB").resize((384, 240))
    assert Registry().find(stranger) == (None, "none", None)
    bundle = home / "bundle.json"
    export_bundle(Registry(), work.id, bundle)
    data = json.loads(bundle.read_text())
    assert data["work_id"] == work.id and data["file"]["sha256"] == work.sha256
    assert data["c2pa_manifest"]["validation_state"] in ("Valid", "Trusted")
    with pytest.raises(BrushworkError, match="already exists"):
        export_bundle(Registry(), work.id, bundle)
    with sqlite3.connect(Registry().path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_output_exit_records_opt_outs(home):
    image = Image.open(EXAMPLES / "tubingen.jpg").convert("RGB").resize((320, 240))
    path = save_output(image, home / "plain.png", new_record("test", {}), protection=Protection(watermark=False,
                       provenance=False, register=False))  # fmt: skip
    note = read_record(path).extra["protection"]
    assert note["watermark"] is None and note["opted_out"] == ["watermark", "provenance", "registry"]
    assert not note["c2pa"] and not note["iptc"]
    assert read_source_type(path) is None and check_manifest(path).state == "absent"


# ---------------------------------------------------------------------------------------------
# The vault


def test_encrypt_and_unlock_byte_exact(home, photo, monkeypatch, tmp_path):
    init_keys()
    monkeypatch.setenv("BRUSHWORK_PASSPHRASE", "correct horse")
    preview = tmp_path / "preview.png"
    assert main(["protect", str(photo), "--encrypt", "--preview-size", "256", "-o", str(preview)]) == 0
    assert max(Image.open(preview).size) == 256
    vault_file = home / "data" / "vault" / "photo.bwvault"
    assert photo.read_bytes() not in vault_file.read_bytes()
    assert verify(preview).verdict == INTACT
    work = Registry().get(verify(preview).watermark["work_id"])
    assert work.preview_sha256 and work.sha256 != work.preview_sha256
    restored = tmp_path / "restored.jpg"
    assert main(["unlock", str(vault_file), "-o", str(restored)]) == 0
    assert restored.read_bytes() == photo.read_bytes()


def test_wrong_passphrase_corrupted_and_truncated_vaults_write_nothing(tmp_path, monkeypatch, capsys):
    blob = seal("art.png", b"the original bytes" * 100, "right", memory_kib=1024, passes=1)
    assert open_sealed(blob, "right").data == b"the original bytes" * 100
    flipped = bytearray(blob)
    flipped[len(blob) // 2] ^= 1
    header = bytearray(blob)
    header[14] ^= 1  # the KDF's pass count: authenticated, so it fails too
    cases = {
        "wrong": (blob, "wrong"),
        "corrupt": (bytes(flipped), "right"),
        "truncated": (blob[:-5], "right"),
        "header": (bytes(header), "right"),
        "cut": (blob[:20], "right"),
        "foreign": (b"PNG" * 30, "right"),
    }
    for name, (data, passphrase) in cases.items():
        source = tmp_path / f"{name}.bwvault"
        source.write_bytes(data)
        target = tmp_path / f"{name}.out"
        with pytest.raises(BrushworkError):
            unlock_file(source, passphrase, target)
        assert not target.exists(), name
    monkeypatch.setenv("BRUSHWORK_PASSPHRASE", "wrong")
    assert main(["unlock", str(tmp_path / "wrong.bwvault"), "-o", str(tmp_path / "x.png")]) == 2
    assert "wrong passphrase" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


def test_passphrase_is_never_an_argument():
    with pytest.raises(SystemExit):
        main(["unlock", "v.bwvault", "--passphrase", "secret"])


def test_vault_does_not_follow_a_stored_path(tmp_path, monkeypatch):
    blob = seal("../../etc/evil.png", b"x", "pw", memory_kib=1024, passes=1)
    (tmp_path / "v.bwvault").write_bytes(blob)
    monkeypatch.chdir(tmp_path)
    written = unlock_file(tmp_path / "v.bwvault", "pw")
    assert written == tmp_path / "evil.png"


def test_verify_json_and_self_test_cli(home, photo, capsys):
    out = _protected(home, photo)
    assert main(["verify", str(out), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["verdict"] == INTACT and data["manifest"]["state"] == "trusted"
    assert main(["verify", "--self-test", str(photo), "--attacks", "none,jpeg-90", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    rows = {row["attack"]: row for row in result["attacks"]}
    assert rows["none"]["detection_rate"] == 1.0 and rows["jpeg-90"]["detection_rate"] == 1.0
    assert result["false_positives"] == 0 and result["psnr"] > 38


def test_one_protection_serves_a_batch(home):
    protection = Protection()
    image = Image.open(EXAMPLES / "tubingen.jpg").convert("RGB").resize((320, 240))
    ids = []
    for name in ("a.png", "b.png"):
        path = save_output(image, home / name, new_record("test", {}), protection=protection)
        ids.append(read_record(path).extra["protection"]["work_id"])
        assert Registry().get(ids[-1]).path == str(path.resolve())
    assert ids[0] != ids[1] and protection.last_work_id == ids[1]


def test_a_payload_the_picture_will_not_carry_gets_a_fresh_id(home, monkeypatch):
    from brushwork.protect import watermark

    real, refused = watermark.embed_many, []

    def first_refused(images, work_ids):
        results = real(images, work_ids)
        if not refused:
            refused.append(work_ids[0])
            return [(marked, False, strength) for marked, _, strength in results]
        return results

    monkeypatch.setattr(watermark, "embed_many", first_refused)
    image = Image.open(EXAMPLES / "tubingen.jpg").convert("RGB").resize((320, 240))
    path = save_output(image, home / "a.png", new_record("test", {}), protection=Protection())
    note = read_record(path).extra["protection"]
    assert note["work_id"] != refused[0] and note["watermark_reads_back"]
    assert Registry().get(refused[0]) is None  # the refused ID went back
    assert verify(path).watermark["work_id"] == note["work_id"]


def test_the_mark_is_laid_on_in_strips_without_changing_it(monkeypatch):
    """Big pictures get the mark strip by strip (no full-size float copies); the strips agree with one pass."""
    from brushwork.protect import watermark

    image = Image.open(EXAMPLES / "tubingen.jpg").convert("RGB").resize((320, 240), Image.BICUBIC)
    whole = watermark.embed(image, 0x2B5E7)
    monkeypatch.setattr(watermark, "STRIP_PIXELS", 320 * 17)  # 15 strips, the last one short
    strips = watermark.embed(image, 0x2B5E7)
    diff = np.abs(np.asarray(whole, np.int16) - np.asarray(strips, np.int16))
    assert diff.max() <= 1 and (diff > 0).mean() < 1e-3
    assert watermark.detect(strips).work_id == 0x2B5E7


# ---------------------------------------------------------------------------------------------
# One transaction: everything or nothing


def _left_behind(home: Path) -> list[str]:
    """Files a failed protection could have left: outputs, vault files, temporaries, registry rows."""
    files = [p.name for p in home.rglob("*") if p.is_file() and p.suffix in (".png", ".bwvault", ".tmp")]
    rows = _registry_rows() if Registry().path.exists() else []
    return files + [f"row {row}" for row in rows]


def test_an_unwritable_vault_publishes_nothing(home, photo, monkeypatch):
    monkeypatch.setenv("BRUSHWORK_PASSPHRASE", "correct horse")
    init_keys()
    blocker = home / "not-a-folder"
    blocker.write_text("a file where the vault folder would go")
    preview = home / "preview.png"
    args = ["protect", str(photo), "--encrypt", "--preview-size", "128", "-o", str(preview)]
    assert main([*args, "--vault", str(blocker / "vault")]) == 2
    assert _left_behind(home) == []


def test_a_failure_after_the_vault_is_written_takes_it_back(home, photo, monkeypatch):
    """The last file of the transaction cannot be written: the vault file already written goes too."""
    from brushwork import files

    monkeypatch.setenv("BRUSHWORK_PASSPHRASE", "correct horse")
    init_keys()
    real = files.atomic_write

    def full_for_pngs(path, write):
        if Path(path).suffix == ".png":
            raise files.write_error(Path(path), OSError(28, "No space left on device"))
        return real(path, write)

    monkeypatch.setattr(files, "atomic_write", full_for_pngs)
    preview = home / "preview.png"
    assert main(["protect", str(photo), "--encrypt", "--preview-size", "128", "-o", str(preview)]) == 2
    assert _left_behind(home) == []


def test_registering_that_fails_unpublishes_the_files(home, photo, monkeypatch):
    monkeypatch.setenv("BRUSHWORK_PASSPHRASE", "correct horse")
    init_keys()

    def locked(self, entries):
        raise BrushworkError(f"{self.path}: registry unreadable (database is locked)")

    monkeypatch.setattr(Registry, "register_many", locked)
    preview = home / "preview.png"
    assert main(["protect", str(photo), "--encrypt", "--preview-size", "128", "-o", str(preview)]) == 2
    assert main(["protect", str(photo), "-o", str(home / "copy.png")]) == 2
    assert _left_behind(home) == []


@pytest.mark.parametrize("bad", ["mismatched", "garbage-key", "garbage-cert", "missing"])
def test_bad_keys_leave_no_output_and_no_registry_row(home, photo, capsys, bad):
    own, stranger = init_keys(), init_keys(home / "stranger")
    garbage = home / "garbage.pem"
    garbage.write_text("-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n")
    cert, key = {"mismatched": (own.chain, stranger.key), "garbage-key": (own.chain, garbage),
                 "garbage-cert": (garbage, own.key), "missing": (own.chain, home / "nope.pem")}[bad]  # fmt: skip
    out = home / "out.png"
    capsys.readouterr()
    assert main(["protect", str(photo), "-o", str(out), "--cert", str(cert), "--key", str(key)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("brushwork: error: ") and err.count("\n") == 1, err
    assert _left_behind(home) == []


def test_a_signature_that_fails_at_write_time_leaves_nothing(home, photo, monkeypatch):
    from brushwork.protect import provenance

    init_keys()

    def refused(*args, **kwargs):
        raise BrushworkError("C2PA signing failed (the signer refused); check the certificate chain and key")

    monkeypatch.setattr(provenance, "sign_bytes", refused)
    image = Image.open(photo).convert("RGB")
    with pytest.raises(BrushworkError, match="signing failed"):
        save_output(image, home / "out.png", new_record("test", {}), protection=Protection())
    assert _left_behind(home) == []


# ---------------------------------------------------------------------------------------------
# Signed by default


def test_the_first_output_makes_the_signing_key_once_and_never_shows_it(home, photo, capsys):
    image = Image.open(photo).convert("RGB")
    first = save_output(image, home / "a.png", new_record("test", {}), protection=Protection())
    err = capsys.readouterr().err
    key = home / "config" / "keys" / "signer-key.pem"
    assert err.count("\n") == 1 and "made this computer's signing key" in err and str(key) in err, err
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    assert key.read_text().splitlines()[1] not in err  # the path is said, the key never
    assert check_manifest(first, [home / "config" / "keys" / "ca.pem"]).state == "trusted"
    save_output(image, home / "b.png", new_record("test", {}), protection=Protection())
    assert capsys.readouterr().err == ""  # made once
    assert main(["verify", str(first)]) == 0
    assert "self-made certificate, not a trusted public CA" in capsys.readouterr().out


def test_own_cert_and_key_still_sign_without_making_a_local_key(home, photo):
    theirs = init_keys(home / "theirs")
    out = home / "out.png"
    assert main(["protect", str(photo), "-o", str(out), "--cert", str(theirs.chain), "--key", str(theirs.key)]) == 0
    assert not (home / "config" / "keys").exists()
    assert check_manifest(out, theirs.anchors).state == "trusted"


def test_tests_keep_keys_and_registry_out_of_the_real_home():
    from brushwork.protect.provenance import config_dir
    from brushwork.protect.registry import registry_path

    for path in (config_dir(), registry_path()):
        assert Path.home() not in path.parents or "brushwork-tests-" in str(path) or "pytest-" in str(path), path


# ---------------------------------------------------------------------------------------------
# Protecting an existing output (#23)


def test_protecting_an_output_keeps_how_it_was_made_and_its_work_id(home, photo, monkeypatch, capsys):
    from brushwork.protect.provenance import manifest_store

    image = Image.open(photo).convert("RGB")
    made = save_output(image, home / "made.png", new_record("fast", {"strength": 0.7}), protection=Protection())
    first = read_record(made)
    work_id = first.extra["protection"]["work_id"]
    again = home / "again.png"
    assert main(["protect", str(made), "-o", str(again)]) == 0
    record = read_record(again)
    assert record.engine == "fast" and record.parameters == {"strength": 0.7}  # not "brushwork protect"
    assert record.extra["protected"]["by"] == "brushwork protect"
    assert record.extra["protected"]["source_protection"]["work_id"] == work_id
    note = record.extra["protection"]
    assert note["work_id"] == work_id and "not marked again" in note["watermark_kept"]
    assert np.array_equal(np.asarray(Image.open(again).convert("RGB")), np.asarray(Image.open(made).convert("RGB")))
    assert verify(again).verdict == INTACT and verify(again).watermark["work_id"] == work_id
    manifest = manifest_store(again)
    active = manifest["manifests"][manifest["active_manifest"]]
    parents = [i for i in active["ingredients"] if i.get("relationship") == "parentOf"]
    assert len(parents) == 1 and parents[0]["title"] == "made.png"
    assert parents[0].get("active_manifest")  # the source's own signed manifest travels with it
    assert [row[0] for row in _registry_rows()] == [work_id]  # the same work, not a second one
    assert Registry().get(work_id).path == str(again.resolve())
    # Its encrypted preview is the same work too.
    monkeypatch.setenv("BRUSHWORK_PASSPHRASE", "correct horse")
    preview = home / "preview.png"
    assert main(["protect", str(made), "--encrypt", "--preview-size", "256", "-o", str(preview)]) == 0
    assert read_record(preview).extra["protection"]["work_id"] == work_id
    assert verify(preview).watermark["work_id"] == work_id
    assert [row[0] for row in _registry_rows()] == [work_id]
