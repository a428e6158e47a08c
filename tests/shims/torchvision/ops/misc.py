"""``FrozenBatchNorm2d``, imported by open_clip's ``utils.py``; refuses to run (see the package docstring)."""

from torchvision import unavailable

FrozenBatchNorm2d = unavailable("ops.misc.FrozenBatchNorm2d")
