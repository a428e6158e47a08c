"""Checkpoints as safetensors (tensors) + JSON (config and counters) side by side; never pickle.

``MODEL.safetensors`` holds the weights and, for training checkpoints, the optimiser's moment
tensors under ``optim/...``; ``MODEL.json`` holds the configuration, the step and the RNG state.
Both are written atomically, JSON last, so a kill leaves either the old pair or the new one.
The same JSON also rides in the safetensors header's metadata (key ``brushwork``), so a model
file shared alone still works; a ``.json`` beside it wins (models from before that, edits).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from brushwork.errors import BrushworkError
from brushwork.files import atomic_write, readable_file

#: Key of the settings in the safetensors header's metadata.
HEADER_KEY = "brushwork"


def meta_path(path: str | os.PathLike) -> Path:
    return Path(path).with_suffix(".json")


def save_checkpoint(path: str | os.PathLike, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    path = Path(path)
    flat = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    header = {HEADER_KEY: json.dumps(meta, sort_keys=True)}
    atomic_write(path, lambda tmp: save_file(flat, tmp, metadata=header))
    atomic_write(meta_path(path), lambda tmp: Path(tmp).write_text(json.dumps(meta, indent=2, sort_keys=True)))


def load_meta(path: str | os.PathLike, kind: str | None = None) -> dict:
    """The settings of a checkpoint (its JSON only), checking that it is a ``kind`` checkpoint (None: any)."""
    path = Path(path)
    if path.suffix != ".safetensors":
        raise BrushworkError(f"{path}: brushwork models are .safetensors files")
    readable_file(path, "model file")
    meta_file = meta_path(path)
    if meta_file.exists():
        readable_file(meta_file, "settings file")
    try:
        meta = json.loads(meta_file.read_text() if meta_file.is_file() else _header_meta(path, meta_file))
    except (OSError, ValueError, RecursionError) as exc:
        raise BrushworkError(f"{path}: unreadable model settings ({type(exc).__name__}: {exc})") from exc
    if not isinstance(meta, dict):
        raise BrushworkError(f"{path}: its settings file {meta_file.name} is not a JSON object")
    _check_kind(path, meta, kind)
    return meta


def _header_meta(path: Path, meta_file: Path) -> str:
    """The settings stored in the model file itself, when no .json lies beside it."""
    try:
        with safe_open(str(path), framework="pt") as fh:
            stored = (fh.metadata() or {}).get(HEADER_KEY)
    except Exception as exc:  # noqa: BLE001 - any failure means an unusable model file
        raise BrushworkError(f"{path}: unreadable model ({type(exc).__name__}: {exc})") from exc
    if stored is None:
        raise BrushworkError(f"{path}: its settings file {meta_file.name} is missing beside it")
    return stored


def _check_kind(path: Path, meta: dict, kind: str | None) -> None:
    if kind is not None and meta.get("kind") != kind:
        raise BrushworkError(f"{path}: is a {meta.get('kind', 'unknown')!r} model, not a {kind!r} model")


def load_checkpoint(path: str | os.PathLike, kind: str | None) -> tuple[dict[str, torch.Tensor], dict]:
    """Tensors and metadata of a checkpoint, checking that it is a ``kind`` checkpoint (None: any)."""
    meta = load_meta(path)
    try:
        tensors = load_file(str(path))
    except Exception as exc:  # noqa: BLE001 - any failure means an unusable checkpoint
        raise BrushworkError(f"{path}: unreadable model ({type(exc).__name__}: {exc})") from exc
    meta = _same_step_as_tensors(Path(path), meta)
    _check_kind(Path(path), meta, kind)  # after reading, so a broken file says so first
    return tensors, meta


def _same_step_as_tensors(path: Path, meta: dict) -> dict:
    """The settings that belong to the tensors. The two files are replaced one after the other: a run
    killed between the two leaves new tensors beside the previous step's JSON. The copy in the
    tensors' own header was written with them, so when the steps disagree that copy is the one."""
    if "step" not in meta:
        return meta
    try:
        with safe_open(str(path), framework="pt") as fh:
            header = json.loads((fh.metadata() or {}).get(HEADER_KEY) or "null")
    except Exception:  # noqa: BLE001 - no readable copy: the JSON is all there is
        return meta
    if isinstance(header, dict) and "step" in header and header["step"] != meta["step"]:
        return header
    return meta


def optimizer_tensors(optimizer: torch.optim.Optimizer, prefix: str = "optim") -> tuple[dict[str, torch.Tensor], dict]:
    """Split an optimiser's state into tensors ``prefix/index/name`` (for safetensors) and plain values (JSON)."""
    state = optimizer.state_dict()
    tensors, plain = {}, {"param_groups": state["param_groups"], "state": {}}
    for index, entry in state["state"].items():
        plain["state"][str(index)] = {}
        for key, value in entry.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{prefix}/{index}/{key}"] = value
            else:
                plain["state"][str(index)][key] = value
    return tensors, plain


def restore_optimizer(
    optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], plain: dict, prefix: str = "optim"
) -> None:
    state = {}
    for index, entry in plain["state"].items():
        state[int(index)] = dict(entry)
    for key, value in tensors.items():
        if key.startswith(prefix + "/"):
            _, index, name = key.split("/", 2)
            state.setdefault(int(index), {})[name] = value
    optimizer.load_state_dict({"state": state, "param_groups": plain["param_groups"]})


def save_training_checkpoint(
    path: str | os.PathLike,
    modules: dict[str, torch.nn.Module],
    optimizers: dict[str, torch.optim.Optimizer],
    meta: dict,
    extra: dict[str, torch.Tensor] | None = None,
) -> None:
    """Each module's weights under ``module/…``, each optimiser's moments under ``name/…`` (its plain
    state in ``meta[name]``), and ``extra`` tensors (e.g. RNG states) as they are."""
    tensors = {f"{name}/{k}": v for name, module in modules.items() for k, v in module.state_dict().items()}
    meta = dict(meta)
    for name, optimizer in optimizers.items():
        optim_tensors, meta[name] = optimizer_tensors(optimizer, name)
        tensors.update(optim_tensors)
    tensors.update(extra or {})
    save_checkpoint(path, tensors, meta)


def module_state(tensors: dict[str, torch.Tensor], name: str) -> dict[str, torch.Tensor]:
    """The state dict saved under ``name/`` by :func:`save_training_checkpoint`."""
    prefix = name + "/"
    return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}


def random_state_to_json(state: tuple) -> list:
    """``random.Random.getstate()`` as JSON-friendly lists."""
    version, internal, gauss = state
    return [version, list(internal), gauss]


def random_state_from_json(state: list) -> tuple:
    version, internal, gauss = state
    return (version, tuple(internal), gauss)


def save_slim(source: str | os.PathLike, target: str | os.PathLike) -> None:
    """Copy a trained model without its optimiser and RNG state: a third of the size, apply-only."""
    tensors, meta = load_checkpoint(source, kind=None)
    optimizers = [k for k, v in meta.items() if isinstance(v, dict) and "param_groups" in v]
    tensors = {k: v for k, v in tensors.items() if k.split("/", 1)[0] not in optimizers}
    meta = {k: v for k, v in meta.items() if k not in (*optimizers, "rng")}
    save_checkpoint(target, tensors, meta)
