"""Writing outputs safely: the right kind of file, never over another without --force, never half-written."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from brushwork.errors import BrushworkError


def atomic_write(path: str | os.PathLike, write: Callable[[str], object]) -> Path:
    """Call ``write(tmp_path)`` on a temporary file beside ``path``, then rename it into place.

    A crash or kill leaves the old file (or none), never a partial one, and no stray temp file.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        # mkstemp makes the file private (0600), and some writers recreate it: set the mode a plain
        # open() would have given, after writing.
        os.chmod(tmp, 0o666 & ~_current_umask())
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def check_output_path(path: str | os.PathLike, force: bool = False, suffix: str | tuple[str, ...] = ".png",
                      resume: bool = False) -> Path:  # fmt: skip
    """Refuse an output of the wrong type (``suffix``: one or several), in a missing folder, or that would
    overwrite without ``force``. With ``resume`` the file must already exist (a training run to continue)."""
    path = Path(path)
    suffixes = (suffix,) if isinstance(suffix, str) else suffix
    if path.suffix.lower() not in suffixes:
        why = " (it carries the run's parameters)" if suffixes == (".png",) else ""
        raise BrushworkError(f"{path}: output must be a {' or '.join(suffixes)} file{why}")
    if not path.parent.exists():
        raise BrushworkError(f"{path.parent}: output folder does not exist")
    if path.is_dir():
        raise BrushworkError(f"{path}: is a folder")
    if resume and not path.exists():
        raise BrushworkError(f"{path}: nothing to resume")
    if path.exists() and not (force or resume):
        hint = (
            "--resume to continue it or --force to start over" if suffix == ".safetensors" else "--force to overwrite"
        )
        raise BrushworkError(f"{path}: already exists; use {hint}")
    return path
