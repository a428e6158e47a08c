"""A style chosen by words: rank the user's style library by CLIP similarity to a text.

The library is a folder (searched recursively) or a list of files: style images for the AdaIN engine,
or trained feed-forward models for the fast engine. A model is represented by its style image when
the library holds a file with the SHA-256 recorded in the model (``brushwork fast train`` records
it), else by its own output on the bundled Tübingen photo, which shows its brushwork as well as any
picture can.

Image embeddings are cached by the SHA-256 of what was embedded, per CLIP model, in one SQLite file in
the user's cache folder: a library of thousands of paintings is embedded once, and a later ranking only
reads its files to hash them. A ranking is one transaction, so two processes never interleave writes.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from brushwork.checkpoints import load_meta
from brushwork.database import immediate_transaction, use_wal
from brushwork.device import pick_device
from brushwork.errors import BrushworkError
from brushwork.files import IMAGE_FILE_SUFFIXES
from brushwork.media import image_to_tensor, load_image
from brushwork.records import sha256_file
from brushwork.style import clip_guidance
from brushwork.style.clip_guidance import DEFAULT_MODEL, DEFAULT_PRETRAINED, Clip
from brushwork.style.feedforward import apply_feedforward, load_feedforward

MAX_LIBRARY = 5000  # files ranked at most: a library, not a dataset
KINDS = ("images", "fast")  # what a library holds: style images (AdaIN), or fast models
#: The photo a model without its style image at hand paints, to be embedded in the style image's place.
REFERENCE_PHOTO = Path(__file__).resolve().parent.parent / "examples" / "tubingen.jpg"
REFERENCE_SIZE = 256
BATCH = 16


@dataclass(frozen=True)
class StyleMatch:
    path: Path  # the style image, or the fast model
    score: float  # cosine similarity of its CLIP embedding to the text's
    sha256: str  # of ``path``
    shown_by: str  # what was embedded: "image", "style image NAME", or "output on tubingen.jpg"

    def described(self) -> dict:
        """For records: the file's name (not its folder) and hash, the score, what stood for it."""
        return {"name": self.path.name, "sha256": self.sha256, "score": round(self.score, 4),
                "shown_by": self.shown_by}  # fmt: skip


@dataclass
class StylePick:
    """A library ranked by words, best match first: ``best`` is the chosen style (or model)."""

    text: str
    kind: str
    matches: list[StyleMatch]
    clip: dict  # the CLIP model's name and weights, for records
    cached: int = 0  # embeddings read from the cache rather than computed
    notes: list[str] = field(default_factory=list)

    @property
    def best(self) -> StyleMatch:
        return self.matches[0]

    def described(self, top: int = 3) -> dict:
        """The record's account of the choice: the text, the chosen style with its score, the runners-up."""
        return {"text": self.text, "chosen": self.best.described(),
                "ranked": [m.described() for m in self.matches[:top]], "library_size": len(self.matches),
                "clip": self.clip}  # fmt: skip


def rank_library(
    clip: Clip,
    text: str,
    library: str | os.PathLike | Sequence[str | os.PathLike],
    kind: str = "images",
    cache: str | os.PathLike | None = None,
    device: torch.device | str = "cpu",
) -> StylePick:
    """The ``kind`` files of ``library`` (a folder, or a list of files and folders), best match to ``text``
    first. ``cache``: an SQLite file for the embeddings (None: no cache). Unreadable files are skipped."""
    if kind not in KINDS:
        raise BrushworkError(f"a style library holds {' or '.join(KINDS)}, not {kind!r}")
    text_embedding = clip.encode_text(text)  # checks the text before any file is read
    images, models = _library_files(library)
    candidates = images if kind == "images" else [m for m in models if _is_fast_model(m)]
    if not candidates:
        what = "style images" if kind == "images" else "fast models (brushwork fast train)"
        raise BrushworkError(f"{_library_name(library)}: no {what} in this style library")
    if len(candidates) > MAX_LIBRARY:
        raise BrushworkError(f"{_library_name(library)}: {len(candidates)} files; a style library ranks at most "
                             f"{MAX_LIBRARY}")  # fmt: skip
    store = EmbeddingCache(cache, clip.identity) if cache is not None and clip.identity else None
    described = {"name": clip.name, "weights": clip.pretrained}
    if clip.identity and "@" in clip.identity:  # a weights file: its hash, as records name every input
        described["sha256"] = clip.identity.split("@", 1)[1]
    pick = StylePick(text, kind, [], described)
    entries = _entries(candidates, images if kind == "fast" else [], pick.notes)
    embeddings = store.get([e.key for e in entries]) if store else {}
    pick.cached = len(embeddings)
    todo = [e for e in entries if e.key not in embeddings]
    for start in range(0, len(todo), BATCH):
        keys, pictures = [], []
        for entry in todo[start : start + BATCH]:
            try:
                pictures.append(_square(entry.picture(), clip.image_size))
            except BrushworkError as exc:
                pick.notes.append(f"skipped {entry.path.name}: {exc}")
                continue
            keys.append(entry.key)
        if pictures:
            with torch.no_grad():
                vectors = clip.encode_images(torch.cat([image_to_tensor(p) for p in pictures]).to(device))
            embeddings.update(zip(keys, vectors.float().cpu().numpy(), strict=True))
    if store:
        store.put({e.key: embeddings[e.key] for e in todo if e.key in embeddings})
    target = text_embedding.float().cpu().numpy()[0]
    for entry in entries:
        if entry.key in embeddings:
            pick.matches.append(StyleMatch(entry.path, float(np.dot(embeddings[entry.key], target)), entry.sha256,
                                           entry.shown_by))  # fmt: skip
    if not pick.matches:
        raise BrushworkError(f"{_library_name(library)}: no readable files in this style library")
    pick.matches.sort(key=lambda m: (-m.score, str(m.path)))
    return pick


def _library_name(library) -> str:
    return str(library) if isinstance(library, (str, os.PathLike)) else "the style library"


def _library_files(library) -> tuple[list[Path], list[Path]]:
    """(style images, .safetensors files) in ``library``, each once, in a stable order."""
    roots = [library] if isinstance(library, (str, os.PathLike)) else list(library)
    files: list[Path] = []
    for root in map(Path, roots):
        if root.is_dir():
            files += sorted(p for p in root.rglob("*") if p.is_file())
        elif root.is_file():
            files.append(root)
        else:
            raise BrushworkError(f"{root}: no such style library (a folder, or style files)")
    files = list(dict.fromkeys(files))
    images = [p for p in files if p.suffix.lower() in IMAGE_FILE_SUFFIXES]
    return images, [p for p in files if p.suffix == ".safetensors"]


def _is_fast_model(path: Path) -> bool:
    try:
        return load_meta(path).get("kind") == "fast-style"
    except BrushworkError:
        return False


@dataclass
class _Entry:
    path: Path  # the candidate
    sha256: str  # its hash
    key: tuple[str, str]  # the cache's (kind, sha256) of the picture that stands for it
    shown_by: str
    picture: Callable[[], Image.Image]


def _entries(candidates: list[Path], images: list[Path], notes: list[str]) -> list[_Entry]:
    """What to embed for each candidate: a style image itself; for a fast model, its style image when
    ``images`` hold one with the hash the model recorded, else its render of the reference photo."""
    by_hash = {sha256_file(p): p for p in images} if images else {}
    entries = []
    for path in candidates:
        try:
            digest = sha256_file(path)
        except OSError as exc:
            notes.append(f"skipped {path.name}: {exc.strerror or exc}")
            continue
        if path.suffix != ".safetensors":
            entries.append(_Entry(path, digest, ("image", digest), "image", partial(load_image, path)))
            continue
        wanted = (load_meta(path).get("style") or {}).get("sha256")
        style = by_hash.get(wanted)
        if style is not None:
            entries.append(_Entry(path, digest, ("image", wanted), f"style image {style.name}",
                                  partial(load_image, style)))  # fmt: skip
        else:
            entries.append(_Entry(path, digest, ("render", digest), f"output on {REFERENCE_PHOTO.name}",
                                  partial(_render, path)))  # fmt: skip
    return entries


def _render(model: Path) -> Image.Image:
    """A fast model's picture of the reference photo: its style, where its style image is not at hand."""
    net, _ = load_feedforward(model)
    return apply_feedforward(net, [load_image(REFERENCE_PHOTO)], image_size=REFERENCE_SIZE)[0]


def _square(image: Image.Image, size: int) -> Image.Image:
    """CLIP's preprocessing: the short side to ``size``, then the centre square."""
    return ImageOps.fit(image.convert("RGB"), (size, size), Image.Resampling.BICUBIC)


class EmbeddingCache:
    """CLIP image embeddings by (CLIP model, kind of picture, SHA-256) in one SQLite file (WAL)."""

    def __init__(self, path: str | os.PathLike, clip_identity: str):
        self.path, self.clip = Path(path), clip_identity

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, isolation_level=None, timeout=30)
        use_wal(db)
        db.execute("CREATE TABLE IF NOT EXISTS embeddings (clip TEXT, kind TEXT, sha256 TEXT, vector BLOB, "
                   "PRIMARY KEY (clip, kind, sha256))")  # fmt: skip
        return db

    def get(self, keys: list[tuple]) -> dict[tuple, np.ndarray]:
        found = {}
        try:
            db = self._connect()
        except sqlite3.Error:
            return found  # an unusable cache is no cache: the embeddings are computed again
        with closing(db):
            for key in keys:
                row = db.execute("SELECT vector FROM embeddings WHERE clip=? AND kind=? AND sha256=?",
                                 (self.clip, key[0], key[1])).fetchone()  # fmt: skip
                if row is not None:
                    found[key] = np.frombuffer(row[0], dtype=np.float32)
        return found

    def put(self, vectors: dict[tuple, np.ndarray]) -> None:
        if not vectors:
            return
        try:
            with closing(self._connect()) as db, immediate_transaction(db):
                db.executemany("INSERT OR REPLACE INTO embeddings VALUES (?, ?, ?, ?)",
                               [(self.clip, k[0], k[1], np.asarray(v, np.float32).tobytes())
                                for k, v in vectors.items()])  # fmt: skip
        except sqlite3.Error:
            pass  # a read-only or full cache folder costs time next run, not this run


def default_cache() -> Path:
    import platformdirs  # only where a ranking keeps its embeddings in the user's cache

    return Path(platformdirs.user_cache_dir("brushwork", appauthor=False)) / "clip-embeddings.sqlite"


def rank_styles(
    text: str,
    library: str | os.PathLike | Sequence[str | os.PathLike],
    *,
    kind: str = "images",
    clip: Clip | None = None,
    clip_model: str = DEFAULT_MODEL,
    clip_pretrained: str = DEFAULT_PRETRAINED,
    clip_weights: str | os.PathLike | None = None,
    cache: str | os.PathLike | bool = True,
    device: str = "auto",
) -> StylePick:
    """Rank a style library by CLIP similarity to ``text``, best first: style images (``kind="images"``, for
    :func:`adain_apply`) or fast models (``kind="fast"``, for :func:`fast_apply`), in a folder (searched
    recursively) or given as files. Pass the result as ``adain_apply``'s style or ``fast_apply``'s model to
    use the best match; the record then keeps the text, the choice and its score.

    CLIP is ``clip`` if given, else ``clip_model``/``clip_pretrained`` from the Hugging Face cache, or
    ``clip_weights`` (a file). Image embeddings are cached by SHA-256 in ``cache`` (True: the user's
    cache folder; False: none), so a big library is embedded once.
    """
    dev = pick_device(device)
    # clip_guidance.load_clip is looked up when called: a stand-in CLIP (tests, a notebook) can take its place.
    clip = clip.to(dev) if clip is not None else clip_guidance.load_clip(clip_model, clip_pretrained, clip_weights, dev)
    store = default_cache() if cache is True else (cache or None)
    return rank_library(clip, text, library, kind, store, dev)
