"""brushwork: an AI art studio."""

import os
import sys
from collections.abc import Mapping

# PyTorch's OpenMP on Linux (libgomp) keeps idle threads spinning for 300k rounds after each
# parallel region, and NNPACK's own threads (VGG's Winograd convolutions, backbones/winograd.py)
# then share the cores with spinners. A tenth of that spin measured VGG +15 % at 256 px and no
# change for VGG at 512 px, Lite0 or the GANs (docs/benchmarks.md). libgomp reads it once, when
# torch loads, so it is only set before that; a user's own setting wins.
OPENMP_DEFAULTS = {"GOMP_SPINCOUNT": "30000"}


def with_openmp_defaults(environ: Mapping[str, str]) -> dict[str, str]:
    """``environ`` with brushwork's OpenMP defaults where it sets neither them nor a wait policy."""
    if "OMP_WAIT_POLICY" in environ:
        return dict(environ)
    return {**OPENMP_DEFAULTS, **environ}


if "torch" not in sys.modules:
    os.environ.update(with_openmp_defaults(os.environ))

from brushwork._version import __version__  # noqa: E402
from brushwork.errors import BrushworkError  # noqa: E402

#: The API's functions, loaded on first use: ``import brushwork`` (and the CLI's verbs that need no
#: network) must not pay the seconds torch takes to load (#21).
_API = ("adain_apply", "adain_export", "adain_slim", "adain_train", "fast_apply", "fast_export", "fast_slim",
        "fast_train", "gan_evaluate", "gan_grid", "gan_interpolate", "gan_sample", "gan_train", "high_precision",
        "info", "load_model", "read_record", "save", "stylize", "stylize_video")  # fmt: skip


def _load_api():
    try:
        from brushwork import api
    except KeyboardInterrupt:
        # Ctrl-C while torch loads (seconds, before the CLI can catch anything): the command line ends
        # like any other interrupt, exit 130 without a traceback; a Python session sees the interrupt.
        if os.path.basename(sys.argv[0]) in ("brushwork", "brushwork.exe", "-m", "__main__.py"):
            sys.stderr.write("\nbrushwork: interrupted\n")
            raise SystemExit(130) from None
        raise
    return api


def __getattr__(name: str):
    if name in _API:
        value = getattr(_load_api(), name)
        globals()[name] = value  # found directly from now on
        return value
    raise AttributeError(f"module 'brushwork' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_API})


__all__ = [
    "BrushworkError",
    "__version__",
    "adain_apply",
    "adain_export",
    "adain_slim",
    "adain_train",
    "fast_apply",
    "fast_export",
    "fast_slim",
    "fast_train",
    "gan_evaluate",
    "gan_grid",
    "gan_interpolate",
    "gan_sample",
    "gan_train",
    "high_precision",
    "info",
    "load_model",
    "read_record",
    "save",
    "stylize",
    "stylize_video",
]
