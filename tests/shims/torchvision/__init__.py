"""A stand-in for torchvision, for the CLIP tests only, on machines with no torchvision build for the
installed torch (PyPI's torchvision wheels are CUDA builds that will not load beside a CPU-only torch).

open_clip imports a few torchvision names when it is imported; it uses them only for its image
preprocessing pipelines and for freezing batch norms, neither of which brushwork calls (brushwork
prepares CLIP's input itself, ``style/clip_guidance.py``). So this package defines just those names,
and every one of them fails loudly when used: a test that strayed into torchvision would fail, not
pass on a fake. ``tests/conftest.py::import_open_clip`` puts it on the path only where no torchvision
is installed at all, never in front of a real one.
"""

__version__ = "0.0.0+brushwork-test-stand-in"


def unavailable(name: str):
    """A callable (and class) that refuses to run: the stand-in has no torchvision behind it."""

    class Unavailable:
        def __init__(self, *args, **kwargs):
            raise NotImplementedError(f"torchvision.{name} is not available (test stand-in for torchvision)")

    Unavailable.__name__ = Unavailable.__qualname__ = name.rsplit(".", 1)[-1]
    return Unavailable
