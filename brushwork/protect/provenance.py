"""Provenance: say in the file that it is AI-made (IPTC), and sign how it was made (C2PA).

* XMP ``Iptc4xmpExt:DigitalSourceType = trainedAlgorithmicMedia``, the IPTC term platforms read
  to label AI images, written with ``pyexiv2`` (Exiv2 writes XMP into PNG as well as JPEG/WebP).
* A C2PA manifest signed with ``c2pa-python``, offline: a ``c2pa.created`` action by brushwork
  with the engine and a hash of the parameters, the inputs as ingredients (by SHA-256), the same
  digital source type, and the work ID. The signing certificate comes from a local CA that
  ``brushwork keys init`` makes; that CA is the trust anchor ``verify`` checks against. Users
  may bring their own chain and key instead.
"""

from __future__ import annotations

import datetime
import hashlib
import io
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from brushwork.errors import BrushworkError
from brushwork.files import atomic_write
from brushwork.output import CLIP_SUFFIXES
from brushwork.records import IMAGE_SUFFIXES, Record

SOURCE_TYPE = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
XMP_SOURCE_TYPE_KEY = "Xmp.iptcExt.DigitalSourceType"
MIME_TYPES = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp", "TIFF": "image/tiff",
              "MP4": "video/mp4", "GIF": "image/gif"}  # fmt: skip
#: The clips brushwork writes: signed like images, but Exiv2 writes no XMP into them (the manifest
#: states the digital source type instead).
CLIP_FORMATS = {suffix: suffix[1:].upper() for suffix in CLIP_SUFFIXES}  # .mp4 -> MP4, .gif -> GIF
#: Our own assertion in the manifest: the work ID and the record's hash.
BRUSHWORK_ASSERTION = "org.brushwork.work"
#: The label of a re-protected output's parent ingredient (its source file), which its actions name.
PARENT_LABEL = "parent"
CA_FILE, CHAIN_FILE, KEY_FILE, CA_KEY_FILE = "ca.pem", "signer-chain.pem", "signer-key.pem", "ca-key.pem"


def config_dir() -> Path:
    """Where keys live: ``BRUSHWORK_CONFIG_DIR``, else the platform's user config folder."""
    override = os.environ.get("BRUSHWORK_CONFIG_DIR")
    if override:
        return Path(override)
    import platformdirs

    return Path(platformdirs.user_config_dir("brushwork"))


@dataclass
class Keys:
    """A signing certificate chain (leaf first), its private key, and the trust anchors to check against."""

    chain: Path
    key: Path
    anchors: list[Path] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"chain": str(self.chain), "key": str(self.key), "anchors": [str(a) for a in self.anchors]}


# ---------------------------------------------------------------------------------------------
# Keys


def init_keys(directory: str | os.PathLike | None = None, force: bool = False,
              organization: str = "brushwork user") -> Keys:  # fmt: skip
    """Make a local CA and a signing certificate it issues (ECDSA P-256, as C2PA's ES256 wants).

    Private keys are written 0600; nothing is overwritten without ``force``.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    directory = Path(directory) if directory else config_dir() / "keys"
    paths = [directory / name for name in (CA_FILE, CA_KEY_FILE, CHAIN_FILE, KEY_FILE)]
    existing = [p for p in paths if p.exists()]
    if existing and not force:
        raise BrushworkError(f"{existing[0]}: keys already exist; use --force to replace them")
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)

    def name(common_name: str) -> x509.Name:
        return x509.Name(
            [
                x509.NameAttribute(NameOID.COMMON_NAME, common_name),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
            ]
        )

    def usage(signing: bool) -> x509.KeyUsage:
        return x509.KeyUsage(digital_signature=signing, content_commitment=False, key_encipherment=False,
                             data_encipherment=False, key_agreement=False, key_cert_sign=not signing,
                             crl_sign=not signing, encipher_only=False, decipher_only=False)  # fmt: skip

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key, leaf_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(name("brushwork local CA"))
        .issuer_name(name("brushwork local CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(usage(signing=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    leaf = (
        x509.CertificateBuilder()
        .subject_name(name("brushwork signer"))
        .issuer_name(ca.subject)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=730))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(usage(signing=True), critical=True)
        # C2PA accepts a signer with the e-mail protection (S/MIME) purpose.
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(leaf_key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    def pem(cert) -> bytes:
        return cert.public_bytes(serialization.Encoding.PEM)

    def private(key) -> bytes:
        return key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    ca_path, ca_key_path, chain_path, key_path = paths
    _write_private(ca_key_path, private(ca_key))
    _write_private(key_path, private(leaf_key))
    atomic_write(ca_path, lambda tmp: Path(tmp).write_bytes(pem(ca)))
    atomic_write(chain_path, lambda tmp: Path(tmp).write_bytes(pem(leaf) + pem(ca)))
    return Keys(chain_path, key_path, [ca_path])


def _write_private(path: Path, data: bytes) -> None:
    def write(tmp: str) -> None:
        Path(tmp).write_bytes(data)

    atomic_write(path, write)
    os.chmod(path, 0o600)


def find_keys(cert: str | os.PathLike | None = None, key: str | os.PathLike | None = None,
              anchors: list[str | os.PathLike] | None = None) -> Keys | None:  # fmt: skip
    """The keys to sign with: ``cert``/``key`` when given (both), else the local ones if ``keys init`` made them."""
    if (cert is None) != (key is None):
        raise BrushworkError("--cert and --key go together")
    local = config_dir() / "keys"
    if cert is not None:
        keys = Keys(Path(cert), Path(key), [Path(a) for a in anchors or []])
    elif (local / CHAIN_FILE).exists() and (local / KEY_FILE).exists():
        keys = Keys(local / CHAIN_FILE, local / KEY_FILE, [Path(a) for a in anchors or []] or [local / CA_FILE])
    else:
        return None
    for path in [keys.chain, keys.key, *keys.anchors]:
        if not path.is_file():
            raise BrushworkError(f"{path}: no such key or certificate file")
    return keys


def local_keys() -> Keys | None:
    """This computer's signing keys, made on first use: every output is signed by default (#21).

    Made once, announced in one line on stderr (the private key's path, never its contents; mode 0600).
    The CA is self-made: ``verify`` trusts it on this computer only, and says so. None when they cannot
    be made (an unwritable config folder): outputs are then unsigned, and that is said too."""
    keys = find_keys()
    if keys is not None:
        return keys
    try:
        keys = init_keys()
    except BrushworkError:  # another process made them a moment ago
        return find_keys()
    except OSError as exc:
        print(f"brushwork: note: could not make a signing key in {config_dir() / 'keys'} ({exc.strerror}); "
              "outputs are not signed", file=sys.stderr)  # fmt: skip
        return None
    print(f"brushwork: made this computer's signing key {keys.key} (private, mode 0600; a self-made CA that "
          "verify trusts here only): outputs are now C2PA-signed", file=sys.stderr)  # fmt: skip
    return keys


def trust_anchors(extra: list[str | os.PathLike] | None = None) -> list[Path]:
    """The CA certificates ``verify`` trusts: the local CA (if any) and any given."""
    anchors = [Path(a) for a in extra or []]
    local = config_dir() / "keys" / CA_FILE
    return anchors + ([local] if local.exists() else [])


# ---------------------------------------------------------------------------------------------
# Writing


def _format(path: Path) -> str:
    fmt = IMAGE_SUFFIXES.get(path.suffix.lower()) or CLIP_FORMATS.get(path.suffix.lower())
    if fmt is None:
        kinds = ", ".join(sorted([*IMAGE_SUFFIXES, *CLIP_FORMATS]))
        raise BrushworkError(f"{path}: provenance is written into {kinds} files only")
    return fmt


def with_source_type(data: bytes) -> bytes:
    """The image bytes with the IPTC digital source type added to their XMP (other metadata kept)."""
    import pyexiv2

    image = pyexiv2.ImageData(data)
    try:
        image.modify_xmp({XMP_SOURCE_TYPE_KEY: SOURCE_TYPE})
        return image.get_bytes()
    finally:
        image.close()


def read_source_type(path: str | os.PathLike) -> str | None:
    import pyexiv2

    try:
        image = pyexiv2.ImageData(Path(path).read_bytes())
    except (RuntimeError, OSError):  # Exiv2 cannot parse it: no XMP to speak of
        return None
    try:
        return image.read_xmp().get(XMP_SOURCE_TYPE_KEY)
    except (RuntimeError, UnicodeDecodeError):
        return None
    finally:
        image.close()


def parameters_hash(record: Record) -> str:
    return hashlib.sha256(json.dumps(record.parameters, sort_keys=True).encode()).hexdigest()


def manifest_definition(record: Record, title: str) -> dict:
    """The C2PA manifest for an output made as ``record`` says."""
    from brushwork._version import __version__

    ingredients = [
        {
            "title": role,
            "format": "application/octet-stream",
            "relationship": "inputTo",
            "instance_id": f"sha256:{digest}",
        }
        for role, digest in sorted(record.input_hashes().items())
    ]
    work = record.extra.get("protection", {})
    # A re-protected output (``protect`` on a brushwork output) was made before: it is opened, not created.
    action = {"action": "c2pa.created", "digitalSourceType": SOURCE_TYPE,
              "softwareAgent": {"name": "brushwork", "version": __version__},
              "parameters": {"engine": record.engine, "parameters_sha256": parameters_hash(record)}}  # fmt: skip
    if record.extra.get("protected"):
        action["action"] = "c2pa.opened"
        action["parameters"]["ingredientIds"] = [PARENT_LABEL]
    return {
        "claim_generator_info": [{"name": "brushwork", "version": __version__}],
        "title": title,
        "ingredients": ingredients,
        "assertions": [
            {
                "label": "c2pa.actions",
                "data": {"actions": [action]},
            },
            {
                "label": BRUSHWORK_ASSERTION,
                "data": {"work_id": work.get("work_id"), "engine": record.engine, "record_sha256": _sha(record)},
            },
        ],
    }


def _sha(record: Record) -> str:
    return hashlib.sha256(record.to_json().encode()).hexdigest()


#: Signers made this process, by the key files and their modification times: loaded (and checked) once.
_SIGNERS: dict[object, object] = {}


def check_keys(keys: Keys) -> None:
    """Refuse, before anything is written, a chain or key that cannot sign: unreadable, not PEM, or a key
    that is not the chain's leaf's (a mismatched ``--cert``/``--key``). Loads the signer (once per process)."""
    signer(keys)


def signer(keys: Keys):
    """The C2PA signer for ``keys``, made once per process (each output used to reload and reparse it)."""
    import c2pa
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    try:
        # by process too: a forked worker makes its own native signer
        stamp = (os.getpid(), *((str(p), p.stat().st_mtime_ns) for p in (keys.chain, keys.key)))
    except OSError as exc:
        raise BrushworkError(f"cannot read the signing key or certificate ({exc.strerror}: {exc.filename})") from exc
    if stamp in _SIGNERS:
        return _SIGNERS[stamp]
    chain, key = keys.chain.read_bytes(), keys.key.read_bytes()
    try:
        leaf = x509.load_pem_x509_certificates(chain)[0]
    except ValueError as exc:
        raise BrushworkError(f"{keys.chain}: not a PEM certificate chain") from exc
    try:
        private = serialization.load_pem_private_key(key, password=None)
    except (ValueError, TypeError) as exc:
        raise BrushworkError(f"{keys.key}: not an unencrypted PEM private key") from exc
    public = serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    if leaf.public_key().public_bytes(*public) != private.public_key().public_bytes(*public):
        raise BrushworkError(f"{keys.key}: this key does not belong to the certificate {keys.chain}")
    try:
        made = c2pa.Signer.from_info(c2pa.C2paSignerInfo(c2pa.C2paSigningAlg.ES256, chain, key, None))
    except c2pa.C2paError as exc:
        raise BrushworkError(f"C2PA cannot sign with {keys.chain} ({exc}); it needs an ES256 (P-256) key") from exc
    _SIGNERS[stamp] = made
    return made


def _add_parent(builder, parent: Path | None) -> None:
    """A re-protected output's source file as its C2PA parent ingredient, with the source's own manifest
    (and so its record's hash and signer) when it had one: how it was made stays in the chain (#23)."""
    if parent is None:
        return
    fmt = _format(parent)
    ingredient = {"title": parent.name, "relationship": "parentOf", "label": PARENT_LABEL}
    with parent.open("rb") as stream:
        builder.add_ingredient(ingredient, MIME_TYPES[fmt], stream)


def _signing_context():
    """The C2PA settings for signing, made once: no thumbnail in the manifest. c2pa's default embeds a
    JPEG thumbnail of the picture, which took 98 % of the time of signing (130-250 ms of 135-255 ms on
    cpu-2c) and 30 kB in every 32 px sample (a 3.7 kB manifest without it); the file is its own picture.
    Nor does c2pa read each manifest back after signing it: that check was 45 % of what signing a 32 px
    sample still cost (3.4 -> 1.9 ms of CPU); the tests verify what this code signs, and so does ``verify``."""
    import c2pa

    key = ("context", os.getpid())
    if key not in _SIGNERS:
        settings = {"builder": {"thumbnail": {"enabled": False}}, "verify": {"verify_after_sign": False}}
        _SIGNERS[key] = c2pa.Context(settings=c2pa.Settings.from_json(json.dumps(settings)))
    return _SIGNERS[key]


def sign_bytes(data: bytes, fmt: str, record: Record, keys: Keys, title: str, parent: Path | None = None) -> bytes:
    """``data`` (an image file's bytes) with a C2PA manifest embedded and signed by ``keys``."""
    import c2pa

    try:
        out = io.BytesIO()
        with c2pa.Builder(manifest_definition(record, title), context=_signing_context()) as builder:
            _add_parent(builder, parent)
            builder.sign(signer(keys), MIME_TYPES[fmt], io.BytesIO(data), out)
    except c2pa.C2paError as exc:
        raise BrushworkError(f"C2PA signing failed ({exc}); check the certificate chain and key") from exc
    return out.getvalue()


def add_provenance(path: str | os.PathLike, record: Record, keys: Keys | None, source_type: bool = True) -> Path:
    """Add the IPTC source type and (with ``keys``) a signed C2PA manifest to a written image or clip,
    atomically. Clips get no XMP (``source_type`` is ignored): their manifest states the source type."""
    path = Path(path)
    data = path.read_bytes()
    signed = provenance_bytes(data, path, record, keys, source_type)
    if signed is data:
        return path
    return atomic_write(path, lambda tmp: Path(tmp).write_bytes(signed))


def provenance_bytes(data: bytes, path: str | os.PathLike, record: Record, keys: Keys | None,
                     source_type: bool = True, parent: Path | None = None) -> bytes:  # fmt: skip
    """``data``, the bytes of an image or clip to be written to ``path``, with the IPTC source type and
    (with ``keys``) a signed C2PA manifest: what :func:`add_provenance` writes, before anything is on disk."""
    path = Path(path)
    fmt = _format(path)
    tag = source_type and fmt not in CLIP_FORMATS.values()
    if tag:
        data = with_source_type(data)  # before signing: the signature covers it
    if keys is not None:
        data = sign_bytes(data, fmt, record, keys, path.name, parent)
    return data


# ---------------------------------------------------------------------------------------------
# Reading


@dataclass
class ManifestCheck:
    """``state``: 'absent', 'trusted' (valid and chains to a trust anchor), 'valid' (signature and
    hashes hold, signer not trusted here) or 'tampered' (a hash or signature fails)."""

    state: str
    failures: list[str] = field(default_factory=list)
    work_id: int | None = None
    engine: str | None = None
    record_sha256: str | None = None
    signer: str | None = None
    source_type: str | None = None  # the digital source type the manifest's actions state

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def _pem_certificates(path: Path) -> str:
    try:
        text = Path(path).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise BrushworkError(f"{path}: cannot read this trust anchor ({exc.__class__.__name__})") from exc
    if "-----BEGIN CERTIFICATE-----" not in text:
        raise BrushworkError(f"{path}: not a PEM certificate")
    return text


def check_manifest(path: str | os.PathLike, anchors: list[Path] | None = None) -> ManifestCheck:
    import c2pa

    path = Path(path)
    settings = {"verify": {"verify_trust": bool(anchors)}}
    if anchors:
        settings["trust"] = {"trust_anchors": "".join(_pem_certificates(a) for a in anchors)}
    try:
        context = c2pa.Context(settings=c2pa.Settings.from_json(json.dumps(settings)))
    except c2pa.C2paError as exc:
        raise BrushworkError(f"the trust anchors are not usable ({exc})") from exc
    try:
        with context:
            reader = c2pa.Reader.try_create(str(path), context=context)
            if reader is None:
                return ManifestCheck("absent")
            with reader:
                state = reader.get_validation_state() or "Invalid"
                results = reader.get_validation_results() or {}
                store = json.loads(reader.json())
    except c2pa.C2paError as exc:
        # A manifest so damaged that it cannot be parsed is as good as a tampered one.
        return ManifestCheck("tampered", [str(exc)])
    failures = [
        f"{f.get('code')}: {f.get('explanation')}" for f in results.get("activeManifest", {}).get("failure", [])
    ]
    manifest = store.get("manifests", {}).get(store.get("active_manifest"), {})
    work = next(
        (a.get("data", {}) for a in manifest.get("assertions", []) if a.get("label") == BRUSHWORK_ASSERTION), {}
    )
    actions = next(
        (a.get("data", {}) for a in manifest.get("assertions", []) if a.get("label", "").startswith("c2pa.actions")), {}
    )
    source_type = next((a["digitalSourceType"] for a in actions.get("actions", []) if "digitalSourceType" in a), None)
    only_trust = failures and all(f.startswith("signingCredential.untrusted") for f in failures)
    if state == "Trusted":
        verdict = "trusted"
    elif state == "Valid" or only_trust:
        verdict = "valid"
    else:
        verdict = "tampered"
    signer = (manifest.get("signature_info") or {}).get("issuer")
    return ManifestCheck(verdict, failures, work.get("work_id"), work.get("engine"), work.get("record_sha256"), signer,
                         source_type)  # fmt: skip


def manifest_store(path: str | os.PathLike) -> dict | None:
    """The C2PA manifest store of ``path`` as JSON (for the registry and its bundles), or None."""
    import c2pa

    try:
        reader = c2pa.Reader.try_create(str(path))
    except c2pa.C2paError:
        return None
    if reader is None:
        return None
    with reader:
        return json.loads(reader.json())
