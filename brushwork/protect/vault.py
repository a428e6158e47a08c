"""Encrypted originals: the full-resolution file stays private, a downscaled public preview goes out.

A vault file is a small versioned header followed by the AES-256-GCM ciphertext of the original
(its file name and bytes, exactly). The key comes from the passphrase through Argon2id
(RFC 9106's second recommended setting: 64 MiB, 3 passes); the salt, nonce and KDF settings are
in the header, and the whole header is authenticated as GCM's associated data, so a changed
setting, a flipped byte or a cut file all fail the tag check and nothing is written.

    magic "BWVAULT\\0" | version u8 | kdf u8 (1 = Argon2id) | memory KiB u32 | passes u32 |
    lanes u8 | salt 16 | nonce 12 | ciphertext + 16-byte tag
"""

from __future__ import annotations

import os
import secrets
import struct
from dataclasses import dataclass
from pathlib import Path

from brushwork.errors import BrushworkError
from brushwork.files import atomic_write, check_output_path

MAGIC, VERSION, KDF_ARGON2ID = b"BWVAULT\0", 1, 1
HEADER = struct.Struct(">8sBBIIB16s12s")
SUFFIX = ".bwvault"
#: Argon2id settings for new vaults; reading accepts others within the bounds below.
MEMORY_KIB, PASSES, LANES = 64 * 1024, 3, 4
#: A hostile header must not make us allocate gigabytes or spin for minutes.
MAX_MEMORY_KIB, MAX_PASSES, MAX_VAULT_BYTES = 1024 * 1024, 16, 4 << 30
PASSPHRASE_ENV = "BRUSHWORK_PASSPHRASE"


@dataclass
class Sealed:
    name: str
    data: bytes


def _key(passphrase: str, salt: bytes, memory_kib: int, passes: int, lanes: int) -> bytes:
    from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

    if not passphrase:
        raise BrushworkError("the passphrase is empty")
    kdf = Argon2id(salt=salt, length=32, iterations=passes, lanes=lanes, memory_cost=memory_kib)
    return kdf.derive(passphrase.encode("utf-8"))


def seal(name: str, data: bytes, passphrase: str, memory_kib: int = MEMORY_KIB, passes: int = PASSES) -> bytes:
    """The vault bytes for a file called ``name`` holding ``data``."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    salt, nonce = secrets.token_bytes(16), secrets.token_bytes(12)
    header = HEADER.pack(MAGIC, VERSION, KDF_ARGON2ID, memory_kib, passes, LANES, salt, nonce)
    encoded = name.encode("utf-8")
    plaintext = struct.pack(">H", len(encoded)) + encoded + data
    key = _key(passphrase, salt, memory_kib, passes, LANES)
    return header + AESGCM(key).encrypt(nonce, plaintext, header)


def open_sealed(blob: bytes, passphrase: str, source: str = "vault file") -> Sealed:
    """The original inside vault bytes, or :class:`BrushworkError` (wrong passphrase, damaged, cut short)."""
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    if len(blob) < HEADER.size + 16 or not blob.startswith(MAGIC):
        raise BrushworkError(f"{source}: not a brushwork vault file (or cut short)")
    magic, version, kdf, memory_kib, passes, lanes, salt, nonce = HEADER.unpack_from(blob)
    if version != VERSION or kdf != KDF_ARGON2ID:
        raise BrushworkError(f"{source}: vault format {version}/{kdf} is not one this brushwork reads")
    if not (8 * lanes <= memory_kib <= MAX_MEMORY_KIB and 1 <= passes <= MAX_PASSES and 1 <= lanes <= 64):
        raise BrushworkError(f"{source}: vault header has implausible key settings; the file is damaged")
    header = blob[: HEADER.size]
    key = _key(passphrase, salt, memory_kib, passes, lanes)
    try:
        plaintext = AESGCM(key).decrypt(nonce, blob[HEADER.size :], header)
    except InvalidTag:
        raise BrushworkError(f"{source}: wrong passphrase, or the vault file is damaged") from None
    (length,) = struct.unpack_from(">H", plaintext)
    return Sealed(plaintext[2 : 2 + length].decode("utf-8"), plaintext[2 + length :])


def lock_file(original: str | os.PathLike, vault_dir: str | os.PathLike, passphrase: str,
              force: bool = False, stem: str | None = None) -> Path:  # fmt: skip
    """Encrypt ``original`` into ``vault_dir/<stem>.bwvault``; returns the vault file."""
    original = Path(original)
    vault_dir = Path(vault_dir)
    vault_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    target = check_output_path(vault_dir / f"{stem or original.stem}{SUFFIX}", force, SUFFIX)
    blob = seal(original.name, original.read_bytes(), passphrase)
    return atomic_write(target, lambda tmp: Path(tmp).write_bytes(blob))


def unlock_file(vault_file: str | os.PathLike, passphrase: str, output: str | os.PathLike | None = None,
                force: bool = False) -> Path:  # fmt: skip
    """Decrypt a vault file to ``output`` (default: the original's name in the current folder), byte for byte."""
    vault_file = Path(vault_file)
    if not vault_file.is_file():
        raise BrushworkError(f"{vault_file}: no such vault file")
    if vault_file.stat().st_size > MAX_VAULT_BYTES:
        raise BrushworkError(f"{vault_file}: too large to be a brushwork vault file")
    sealed = open_sealed(vault_file.read_bytes(), passphrase, str(vault_file))
    name = Path(sealed.name).name  # never a path the vault file chose
    target = Path(output) if output else Path.cwd() / name
    if target.exists() and not force:
        raise BrushworkError(f"{target}: already exists; use --force to overwrite")
    if not target.parent.exists():
        raise BrushworkError(f"{target.parent}: output folder does not exist")
    return atomic_write(target, lambda tmp: Path(tmp).write_bytes(sealed.data))


def passphrase_from_user(confirm: bool = False) -> str:
    """``BRUSHWORK_PASSPHRASE`` if set, else a prompt (twice when ``confirm``). Never a command-line argument."""
    value = os.environ.get(PASSPHRASE_ENV)
    if value is not None:  # set, even to nothing: the user chose the environment over a prompt
        if not value:
            raise BrushworkError(f"{PASSPHRASE_ENV} is set but empty")
        return value
    import getpass
    import warnings

    try:
        # Without a terminal getpass warns that the input may be echoed, then reads stdin: refuse instead.
        with warnings.catch_warnings():
            warnings.simplefilter("error", getpass.GetPassWarning)
            value = getpass.getpass("passphrase: ")
            if confirm and getpass.getpass("again: ") != value:
                raise BrushworkError("the passphrases differ")
    except (EOFError, getpass.GetPassWarning):
        raise BrushworkError(f"no passphrase: set {PASSPHRASE_ENV} or run in a terminal") from None
    if not value:
        raise BrushworkError("the passphrase is empty")
    return value
