"""Every function of ``torchvision.transforms.functional`` refuses to run (see the package docstring)."""

from torchvision import unavailable


def __getattr__(name: str):
    if name.startswith("__"):
        raise AttributeError(name)
    return unavailable(f"transforms.functional.{name}")
