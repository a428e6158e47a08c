"""The Python API: one function per engine, the same conventions for all of them.

Inputs are paths or PIL images; keyword arguments are named like the command line's options
(``--style-blend-weights`` is ``style_blend_weights``); ``device`` and ``seed`` where they mean
something; a progress callback (``on_step`` or ``on_frame``); ``max_pixels`` bounds the inputs.
Images come back carrying their :class:`~brushwork.records.Record` (``records.record_of(image)``);
``brushwork.save(image, "out.png")`` writes one with it (the one exit, also used by the CLI) and
``brushwork.info(path)`` reads it back from any output.

Each engine lives in its own module of :mod:`brushwork.pipelines` (its ``Settings``, ``Inputs`` and
``run``); this module is the stable set of public names over them and over what spans engines (saving,
``brushwork.saving``; a user's taste, ``brushwork.taste_choice``; a style library ranked by words,
``style.style_library``). It defines nothing itself: names, aliases and constants only, so each function has
one home below it. The command line and the studio go through these names only (``tests/test_layout.py``),
so a notebook, the CLI and the studio behave alike.
"""

from __future__ import annotations

from brushwork.backbones import BACKBONES, LAYOUTS, load_backbone
from brushwork.backbones.vgg import POOLINGS
from brushwork.errors import BrushworkError
from brushwork.files import IMAGE_FILE_SUFFIXES, all_or_nothing_folder, check_output_path, image_files, step_name
from brushwork.gan.losses import LOSSES as GAN_LOSSES
from brushwork.gan.model import PRECISIONS as GAN_PRECISIONS
from brushwork.gan.model import UPSAMPLING as GAN_UPSAMPLES
from brushwork.gan.model import GanConfig
from brushwork.gan.nets import CONDITIONING as GAN_CONDITIONING
from brushwork.gan.nets import RESOLUTIONS as GAN_RESOLUTIONS
from brushwork.judge.distribution import EXTRACTORS
from brushwork.media import DEFAULT_MAX_PIXELS, first_frame, high_precision, load_image, require_av, video_stream
from brushwork.output import Protection
from brushwork.pipelines import adain as adain_pipeline
from brushwork.pipelines import fast as fast_pipeline
from brushwork.pipelines import gan_sample as gan_sample_pipeline
from brushwork.pipelines import gan_train as gan_train_pipeline
from brushwork.pipelines import stylize as stylize_pipeline
from brushwork.pipelines import video as video_pipeline
from brushwork.pipelines.adain import adain_apply, adain_apply_many, adain_train
from brushwork.pipelines.common import (
    ADAIN_KIND,
    FAST_KIND,
    MAGENTA_MODEL,
    ImageSource,
    Model,
    cached_backbone,
    cached_model,
    load_model,
    model_kind,
    model_of,
    open_image,
)
from brushwork.pipelines.export import ExportReport, adain_export, fast_export, slim_model
from brushwork.pipelines.fast import fast_apply, fast_apply_many, fast_train
from brushwork.pipelines.gan_sample import gan_classes, gan_grid, gan_interpolate, gan_run_files, gan_sample
from brushwork.pipelines.gan_train import GanPlan, gan_evaluate, gan_train
from brushwork.pipelines.stylize import (
    keep_intermediate,
    recorded_style_options,
    resume_point,
    step_image,
    stylize,
    stylize_record,
)
from brushwork.pipelines.video import VideoReport, publish_clip, stylize_video
from brushwork.records import (
    IMAGE_INFO_KEY,
    IMAGE_SUFFIXES,
    INFOTEXT_KEY,
    Record,
    changed_inputs,
    describe_input,
    new_record,
    read_record,
    record_of,
)
from brushwork.saving import DEFAULT_PROTECTION, PathLike, protection_of, save, save_all
from brushwork.settings import Control, controls, json_schema
from brushwork.style import color
from brushwork.style.adain import AdainConfig
from brushwork.style.clip_guidance import DEFAULT_MODEL as DEFAULT_CLIP_MODEL
from brushwork.style.clip_guidance import DEFAULT_PRETRAINED as DEFAULT_CLIP_PRETRAINED
from brushwork.style.clip_guidance import Clip
from brushwork.style.feedforward import FastConfig
from brushwork.style.gatys import INITS, OPTIMIZERS, Step, StyleConfig
from brushwork.style.magenta import NAME as MAGENTA_NETWORK  # what records call MAGENTA_MODEL
from brushwork.style.masks import check_mask_count
from brushwork.style.style_library import StylePick, rank_styles
from brushwork.taste_choice import TASTE_ENGINES, taste_settings
from brushwork.training import TrainStep

#: Choice lists, for the CLI and the studio's forms (one source: the library's own).
PRESERVE_COLORS = color.MODES
#: The engine name each function writes into its records.
ENGINES = {"stylize": stylize_pipeline.ENGINE, "fast_apply": fast_pipeline.ENGINE, "adain_apply": adain_pipeline.ENGINE,
           "stylize_video": video_pipeline.ENGINE, "gan_sample": gan_sample_pipeline.ENGINE,
           "gan_interpolate": gan_sample_pipeline.WALK_ENGINE}  # fmt: skip
#: Each engine's settings, by the name the studio and the records use: the faces draw their options from these.
SETTINGS = {"stylize": stylize_pipeline.Settings, "fast": fast_pipeline.Settings, "adain": adain_pipeline.Settings,
            "video": video_pipeline.Settings, "gan-sample": gan_sample_pipeline.Settings,
            "fast-train": fast_pipeline.TrainSettings, "adain-train": adain_pipeline.TrainSettings,
            "gan-interpolate": gan_sample_pipeline.Walk}  # fmt: skip
#: The settings of a GAN run's data, beside :class:`GanConfig`.
GanData = gan_train_pipeline.Data
#: How ``gan_evaluate`` measures a run (its files, the run and the classifier, are its inputs).
GanEvaluation = gan_train_pipeline.Evaluation
#: A frame shrunk for bigger strokes (audio-reactive scale) keeps at least this side, as the engines need.
MIN_FRAME_SIDE = video_pipeline.MIN_FRAME_SIDE

info = read_record
fast_slim = adain_slim = slim_model


__all__ = [
    "ADAIN_KIND",
    "AdainConfig",
    "BACKBONES",
    "BrushworkError",
    "Clip",
    "Control",
    "DEFAULT_CLIP_MODEL",
    "DEFAULT_CLIP_PRETRAINED",
    "DEFAULT_MAX_PIXELS",
    "DEFAULT_PROTECTION",
    "ENGINES",
    "EXTRACTORS",
    "ExportReport",
    "FAST_KIND",
    "FastConfig",
    "GAN_CONDITIONING",
    "GAN_LOSSES",
    "GAN_PRECISIONS",
    "GAN_RESOLUTIONS",
    "GAN_UPSAMPLES",
    "GanConfig",
    "GanData",
    "GanEvaluation",
    "GanPlan",
    "IMAGE_FILE_SUFFIXES",
    "IMAGE_INFO_KEY",
    "IMAGE_SUFFIXES",
    "INFOTEXT_KEY",
    "INITS",
    "ImageSource",
    "LAYOUTS",
    "MAGENTA_MODEL",
    "MAGENTA_NETWORK",
    "MIN_FRAME_SIDE",
    "Model",
    "OPTIMIZERS",
    "POOLINGS",
    "PRESERVE_COLORS",
    "PathLike",
    "Protection",
    "Record",
    "SETTINGS",
    "Step",
    "StyleConfig",
    "StylePick",
    "TASTE_ENGINES",
    "TrainStep",
    "VideoReport",
    "adain_apply",
    "adain_apply_many",
    "adain_export",
    "adain_slim",
    "adain_train",
    "all_or_nothing_folder",
    "cached_backbone",
    "cached_model",
    "changed_inputs",
    "check_mask_count",
    "check_output_path",
    "controls",
    "describe_input",
    "fast_apply",
    "fast_apply_many",
    "fast_export",
    "fast_slim",
    "fast_train",
    "gan_classes",
    "gan_evaluate",
    "gan_grid",
    "gan_interpolate",
    "gan_run_files",
    "gan_sample",
    "gan_train",
    "first_frame",
    "high_precision",
    "image_files",
    "info",
    "json_schema",
    "keep_intermediate",
    "load_backbone",
    "load_image",
    "load_model",
    "model_kind",
    "model_of",
    "new_record",
    "open_image",
    "protection_of",
    "publish_clip",
    "rank_styles",
    "read_record",
    "record_of",
    "recorded_style_options",
    "require_av",
    "resume_point",
    "save",
    "save_all",
    "slim_model",
    "step_image",
    "step_name",
    "stylize",
    "stylize_record",
    "stylize_video",
    "taste_settings",
    "video_stream",
]
