"""The names open_clip's ``transform.py`` imports; each refuses to run (see the package docstring)."""

import enum

from torchvision import unavailable


class InterpolationMode(enum.Enum):  # used as default arguments when open_clip is imported
    NEAREST = "nearest"
    BILINEAR = "bilinear"
    BICUBIC = "bicubic"


Normalize = unavailable("transforms.Normalize")
Compose = unavailable("transforms.Compose")
RandomResizedCrop = unavailable("transforms.RandomResizedCrop")
ToTensor = unavailable("transforms.ToTensor")
Resize = unavailable("transforms.Resize")
CenterCrop = unavailable("transforms.CenterCrop")
ColorJitter = unavailable("transforms.ColorJitter")
Grayscale = unavailable("transforms.Grayscale")
