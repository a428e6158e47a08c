"""Moved to :mod:`brushwork.training` (the one training skeleton, shared with the GANs); these names
stay importable from here for code written against the old place."""

from brushwork.training import (  # noqa: F401 - re-exports
    IMAGE_SUFFIXES,
    ImageFolder,
    TrainingConfig,
    TrainStep,
    config_from_dict,
    list_images,
    load_for_resume,
    run_training,
)
