"""Training a GAN on an image folder (classes = sub-folders) or Fashion-MNIST, and measuring a run.

    run(Inputs("photos/", "runs/faces"), Data(conditional=True), GanConfig(steps=2000))

``run`` checks the run folder and the settings, reads the data, shows every setting before the first
step (``on_start``), then trains; the run folder holds options, log, samples and the checkpoint.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from brushwork.checkpoints import load_meta
from brushwork.device import pick_device
from brushwork.distributed import launched_rank
from brushwork.errors import BrushworkError
from brushwork.gan.data import load_dataset
from brushwork.gan.evaluate import evaluate_run
from brushwork.gan.model import GanConfig, read_options
from brushwork.gan.nets import RESOLUTIONS
from brushwork.gan.train import CHECKPOINT, SCHEDULE, prepare_run_folder, train_gan
from brushwork.judge.classes import class_consistency
from brushwork.pipelines.common import PathLike
from brushwork.settings import Checked, controls, setting
from brushwork.training import TrainStep, config_from_dict


@dataclass
class Data(Checked):
    """How the training images are read (the network's sizes follow from them)."""

    conditional: bool = setting(False, help="labels from sub-folder names")
    resolution: int | None = setting(None, help="default: from the data", choices=RESOLUTIONS)
    channels: int | None = setting(None, help="default: 1 if every image is grey", choices=(1, 3))


@dataclass
class Inputs:
    data: PathLike  # an image folder, a folder of Fashion-MNIST IDX files, or 'fashion-mnist'
    output: PathLike  # the run folder (created, with its parents)


@dataclass
class Evaluation(Checked):
    """How a run is measured (the files it is measured with are :class:`EvaluationInputs`)."""

    samples: int = setting(1000, help="generated and real images compared (as in training)", low=2, high=100_000)
    # Any registered extractor (judge.distribution.EXTRACTORS, open to more at run time): the faces list them.
    extractor: str | None = setting(None, help="FID/KID features: lite0 (offline) or inception (as in papers); "
                                    "default: the run's")  # fmt: skip
    classifier_range: list[float] = setting(default_factory=lambda: [0.0, 1.0], parts=("low", "high"),
                                            help="the pixel range the classifier was trained on")  # fmt: skip

    def validate(self, n_styles: int | None = None) -> None:
        super().validate()
        low, high = self.classifier_range
        if not low < high:
            raise BrushworkError(f"classifier range: low ({low:g}) must be below high ({high:g})")


@dataclass
class EvaluationInputs:
    run: PathLike  # a run folder from ``gan train``
    data: PathLike | None = None  # the training data, if it has moved since (default: where the run recorded it)
    extractor_weights: PathLike | None = None  # a local weights file for the extractor's features
    classifier: PathLike | None = None  # an ONNX classifier of the run's classes (scores in the run's class order)


@dataclass
class GanPlan:
    """What a GAN run is about to do, for printing at its start."""

    config: dict
    images: int
    classes: list[str]
    skipped: list[str]
    resumed: bool


#: The GAN settings a caller may give (the sizes and the class count come from the data).
SETTINGS = tuple(c.name for c in controls(GanConfig))


def run(inputs: Inputs, data: Data, config: dict, on_progress: Callable[[TrainStep], None] | None = None, *,
        resume: bool = False, force: bool = False, device: str = "auto",
        on_start: Callable[[GanPlan], None] | None = None) -> Path:  # fmt: skip
    """Train; ``config`` holds the :class:`GanConfig` settings given (unset ones keep the defaults, or on
    resume the run's own); ``on_start`` sees every setting before the first step (under torchrun, in the
    first process only)."""
    out = Path(inputs.output)
    # 1. Check the run folder and the settings before the data loads (train_gan clears and creates it).
    prepare_run_folder(out, inputs.data, force, resume, check_only=True)
    data.validate()
    unknown = set(config) - set(SETTINGS)
    if unknown:
        raise BrushworkError(f"unknown GAN setting(s): {', '.join(sorted(unknown))}")
    given = {k: v for k, v in config.items() if v is not None}
    # 2. The data, which sets the network's sizes.
    dataset = load_dataset(str(inputs.data), data.conditional, data.resolution, data.channels)
    if data.conditional and not dataset.class_names:
        raise BrushworkError("--conditional needs class labels (sub-folders or Fashion-MNIST)")
    cfg = GanConfig(**{**given, "resolution": dataset.resolution, "channels": dataset.channels,
                       "classes": len(dataset.class_names) if data.conditional else 0})  # fmt: skip
    # 3. Every setting shown before the first step: on resume the run's own, with what may change.
    schedule = {k: v for k, v in given.items() if k in SCHEDULE}
    shown = asdict(cfg)
    if resume:
        stored = config_from_dict(GanConfig, load_meta(out / CHECKPOINT).get("config"), out / CHECKPOINT)
        shown = {**asdict(stored), **schedule}
        shown["steps"] = max(shown["steps"], given.get("steps", 0))
    if launched_rank() == 0 and on_start is not None:
        on_start(GanPlan(shown, len(dataset.images), dataset.class_names, dataset.skipped, resume))
    # 4. Train (the checkpoint, samples and log are written as it goes).
    return train_gan(dataset, out, cfg, pick_device(device), resume, given.get("steps"), on_progress, schedule,
                     force=force)  # fmt: skip


def evaluate(inputs: EvaluationInputs, settings: Evaluation, *, device: str = "auto") -> dict:
    """FID/KID and precision/recall of a run's EMA generator against its training images, with a
    ``protocol`` card; with a classifier, the share of samples it assigns to the class asked for."""
    # 1. Check the settings, then read the run's options and its data.
    settings.validate()
    cfg, recorded = read_options(inputs.run)
    source = str(inputs.data) if inputs.data is not None else recorded["source"]
    dataset = load_dataset(source, cfg.classes > 0, cfg.resolution, cfg.channels)
    weights = str(inputs.extractor_weights) if inputs.extractor_weights is not None else None
    # 2. The judge's class metric, handed to the GAN's evaluation (which never imports the judge).
    check = None
    if inputs.classifier is not None:

        def check(images, labels, names) -> dict:
            return class_consistency(inputs.classifier, images, labels, names, tuple(settings.classifier_range))

    # 3. Measure.
    return evaluate_run(inputs.run, dataset, settings.samples, pick_device(device), settings.extractor, weights, check)


# ---------------------------------------------------------------------------------------------
# The Python API's names (brushwork.api re-exports them)


def gan_train(data: PathLike, output: PathLike, *, conditional: bool = False, resume: bool = False,
              force: bool = False, device: str = "auto", on_step: Callable[[TrainStep], None] | None = None,
              on_start: Callable[[GanPlan], None] | None = None, resolution: int | None = None,
              channels: int | None = None, **config) -> Path:  # fmt: skip
    """Train a GAN on an image folder (classes = sub-folders with ``conditional``) or Fashion-MNIST,
    in the run folder ``output`` (created, with its parents). ``config`` are the fields of
    :class:`~brushwork.gan.model.GanConfig` (``steps``, ``batch_size``, ``latent``, ``g_width``, …);
    ``on_start`` sees every setting before the first step (under torchrun, in the first process only)."""
    return run(Inputs(data, output), Data(conditional, resolution, channels), config, on_step, resume=resume,
               force=force, device=device, on_start=on_start)  # fmt: skip


def gan_evaluate(run: PathLike, *, samples: int = 1000, extractor: str | None = None,
                 extractor_weights: PathLike | None = None, data: PathLike | None = None,
                 classifier: PathLike | None = None, classifier_range: tuple[float, float] = (0.0, 1.0),
                 device: str = "auto") -> dict:  # fmt: skip
    """FID/KID and precision/recall of a run's EMA generator against its training images (``data`` if
    they have moved), on the run's own feature extractor unless one is named (``lite0`` offline,
    ``inception`` as in papers); with ``classifier`` (an ONNX file taking images in
    ``classifier_range``), the share of samples it assigns to the class asked for. The figures come
    with a ``protocol`` card."""
    inputs = EvaluationInputs(run, data, extractor_weights, classifier)
    return evaluate(inputs, Evaluation(samples, extractor, list(classifier_range)), device=device)
