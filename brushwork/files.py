"""Writing outputs safely: the right kind of file, never over another without --force, never half-written."""

from __future__ import annotations

import errno
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from brushwork.errors import BrushworkError


def atomic_write(path: str | os.PathLike, write: Callable[[str], object]) -> Path:
    """Call ``write(tmp_path)`` on a temporary file beside ``path``, then rename it into place.

    A crash or kill leaves the old file (or none), never a partial one. Python-level failures remove the
    temp file; one left by a kill -9 is removed by the next write to the same path.
    """
    path = Path(path)
    remove_stale_temps(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise write_error(path, exc) from exc
    os.close(fd)
    try:
        write(tmp)
        # mkstemp makes the file private (0600), and some writers recreate it: set the mode a plain
        # open() would have given, after writing.
        os.chmod(tmp, 0o666 & ~_current_umask())
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        _publish(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        cause = os_error_in(exc)
        if cause is not None:
            raise write_error(path, cause) from exc
        raise
    return path


#: Outputs checked as new (absent, no --force) by this process and not yet written: written only if
#: still absent, so of two runs writing the same new output at once the second fails instead of
#: silently replacing the first.
_NEW_OUTPUTS: set[Path] = set()
_RACED = "written by another run meanwhile; left as it is (use --force to overwrite)"


def _publish(tmp: str, path: Path) -> None:
    key = path.absolute()
    if key not in _NEW_OUTPUTS:
        os.replace(tmp, path)
        return
    _NEW_OUTPUTS.discard(key)  # checked once, published (or refused) once
    try:
        os.link(tmp, path)  # atomic, and refuses an existing name
    except FileExistsError:
        raise BrushworkError(f"{path}: {_RACED}") from None
    except OSError:  # a file system without hard links: the nearest check
        if path.exists():
            raise BrushworkError(f"{path}: {_RACED}") from None
        os.replace(tmp, path)
    else:
        os.unlink(tmp)


_OS_ERROR_TEXT = re.compile(r"\(os error (\d+)\)")


def os_error_in(exc: BaseException) -> OSError | None:
    """The file system refusal behind ``exc``: itself if an OSError, or one a writer library wrapped in
    its own exception type (safetensors' SafetensorError says only "… (os error 28)" in its text)."""
    seen = 0
    while exc is not None and seen < 8:
        if isinstance(exc, BrushworkError):
            return None  # already said in words
        if isinstance(exc, OSError):
            return exc
        if isinstance(exc, Exception):
            found = _OS_ERROR_TEXT.search(str(exc))
            if found:
                code = int(found.group(1))
                return OSError(code, os.strerror(code))
        exc, seen = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__), seen + 1
    return None


def readable_file(path: str | os.PathLike, what: str = "file") -> Path:
    """``path`` if it is a file this process may read; else one line that says which of missing, a
    folder, or permission denied it is (``Path.is_file`` says False to all three)."""
    path = Path(path)
    try:
        info = path.stat()
    except FileNotFoundError:
        raise BrushworkError(f"{path}: no such {what}") from None
    except PermissionError:
        raise BrushworkError(f"{path}: permission denied (a folder on its way cannot be searched)") from None
    except OSError as exc:
        raise BrushworkError(f"{path}: cannot be read ({exc.strerror})") from None
    if stat.S_ISDIR(info.st_mode):
        raise BrushworkError(f"{path}: is a folder, not a {what}")
    if not os.access(path, os.R_OK):
        raise BrushworkError(f"{path}: permission denied (cannot read this {what})")
    return path


def write_error(path: Path, exc: OSError) -> BrushworkError:
    """An OS failure while writing ``path`` (read-only folder, full disk, ...) as one line for the user."""
    why = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is exceeded",
           errno.EACCES: "permission denied", errno.EPERM: "permission denied",
           errno.EROFS: "the file system is read-only", errno.EFBIG: "the file is larger than this system allows",
           }.get(exc.errno, exc.strerror or str(exc))  # fmt: skip
    return BrushworkError(f"{path}: could not write ({why}); nothing was written")


def _temp_pattern(name: str, prefix: bool = False) -> re.Pattern:
    """brushwork's own temporary names beside ``name``: ``.NAME.PID.XXXXXXXX.tmp`` (PID absent in old ones);
    with ``prefix``, those of every name that begins with ``name``."""
    return re.compile(rf"\.{re.escape(name)}{'[^/]*?' if prefix else ''}\.(?:(\d+)\.)?[a-z0-9_]{{8}}\.tmp")


def remove_stale_temps(path: str | os.PathLike, prefix: bool = False) -> list[Path]:
    """Remove what a killed run (kill -9) left beside ``path``: brushwork's temporary files for it whose
    process is gone (with ``prefix``: for any name beginning with ``path``'s, e.g. every attempt of a studio
    job). Only names of brushwork's own pattern are touched; a live writer's are kept."""
    path = Path(path)
    pattern = _temp_pattern(path.name, prefix)
    removed = []
    try:
        entries = list(path.parent.iterdir())
    except OSError:
        return removed
    for entry in entries:
        match = pattern.fullmatch(entry.name)
        if match is None or (match.group(1) is not None and _alive(int(match.group(1)))):
            continue
        if entry.is_file() and not entry.is_symlink():
            entry.unlink(missing_ok=True)
            removed.append(entry)
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return False  # this process is not writing it now: a leftover of an earlier call
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, owned by someone else
    return True


@contextmanager
def all_or_nothing_folder(target: str | os.PathLike, force: bool = False) -> Iterator[Path]:
    """All-or-nothing output of several files into the folder ``target`` (created; an existing non-empty
    one only with ``force``): yields it to write into; on any failure or Ctrl-C every file written in
    it during the block is removed again (and the folder, if the block made it). Files are written in
    place, not moved afterwards, so hooks that note a file's path (a registry) see its final one."""
    target = Path(target)
    if target.exists() and not target.is_dir():
        raise BrushworkError(f"{target}: is a file; the output here is a folder")
    if not target.parent.is_dir():
        raise BrushworkError(f"{target.parent}: output folder does not exist")
    if target.is_dir() and any(target.iterdir()) and not force:
        raise BrushworkError(f"{target}: folder exists and is not empty; use --force to add to it")
    created = not target.exists()
    before = set(target.rglob("*")) if not created else set()
    try:
        target.mkdir(exist_ok=True)
        yield target
    except BaseException as exc:
        for entry in sorted(set(target.rglob("*")) - before, key=lambda p: len(p.parts), reverse=True):
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
        if created:
            shutil.rmtree(target, ignore_errors=True)
        if isinstance(exc, OSError):
            raise write_error(target, exc) from exc
        raise


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
    settings = path.with_suffix(".json")
    if suffixes == (".safetensors",) and settings.exists() and not path.exists() and not force:
        raise BrushworkError(f"{settings}: already exists and a model's settings would replace it; use --force")
    if path.exists() and not (force or resume):
        hint = (
            "--resume to continue it or --force to start over" if suffix == ".safetensors" else "--force to overwrite"
        )
        raise BrushworkError(f"{path}: already exists; use {hint}")
    if force or resume or path.exists():
        _NEW_OUTPUTS.discard(path.absolute())
    else:
        _NEW_OUTPUTS.add(path.absolute())
    return path


def step_name(step: int) -> str:
    """How every engine names the picture of a run at ``step`` (``step-0000123``: sorts by name), so a
    stylisation's intermediates (``OUT.step-0000123.png``) and a GAN run's samples
    (``RUN/samples/step-0000123.png``) read alike."""
    return f"step-{step:07d}"


#: The still images brushwork reads as inputs (a batch's folder, training data, a style library).
IMAGE_FILE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".bmp")


def image_files(sources: Sequence[str | os.PathLike]) -> list[Path]:
    """Files as given, and a folder's images (top level, by name) in its place: the inputs of a batch."""
    found: list[Path] = []
    for source in sources:
        path = Path(source)
        if path.is_dir():
            inside = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_FILE_SUFFIXES)
            if not inside:
                raise BrushworkError(f"{path}: no images in this folder ({', '.join(IMAGE_FILE_SUFFIXES)})")
            found += inside
        else:
            found.append(path)
    return found
