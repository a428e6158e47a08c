"""Settings chosen by a user's taste: small previews of an engine's search space, scored by the taste model
the user's ratings fit (``judge.taste``).

It spans engines (it previews with ``stylize``, ``fast`` or ``adain``), so it lives one floor above
``pipelines/``, whose modules never import each other, and below ``brushwork.api``, which names it.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from pathlib import Path

from PIL import Image

from brushwork.errors import BrushworkError
from brushwork.judge.ratings import RatingsStore
from brushwork.judge.taste import ADAIN_SPACE, FAST_SPACE, GATYS_SPACE, TasteModel, best_settings
from brushwork.media import DEFAULT_MAX_PIXELS
from brushwork.pipelines.adain import adain_apply
from brushwork.pipelines.common import ADAIN_KIND, FAST_KIND, ImageSource, Model, PathLike, model_of, open_image
from brushwork.pipelines.fast import fast_apply
from brushwork.pipelines.stylize import stylize

#: Engines whose settings a taste model can choose, with the settings searched.
TASTE_ENGINES = ("stylize", "fast", "adain")


def taste_settings(engine: str, content: ImageSource, styles: ImageSource | Sequence[ImageSource] = (), *,
                   taste_db: PathLike, user: str | None, model: Model | PathLike | None = None,
                   preview_size: int = 128, preview_iterations: int = 30, trials: int | None = None,
                   device: str = "auto", **fixed) -> dict:  # fmt: skip
    """The settings of ``engine`` this user is predicted to like most: small previews of each
    combination in the judge's search space, scored by the user's taste model (``judge.taste``).

    ``fixed`` are the run's other keyword arguments (backbone, style_blend_weights, …): previews use
    them too. Gatys previews are slow on a CPU, so ``stylize`` tries 6 combinations by default.
    Returns ``{"settings": best, "ranked": [(settings, utility), …], "user": user}``.
    """
    if engine not in TASTE_ENGINES:
        raise BrushworkError(f"taste picks settings for {', '.join(TASTE_ENGINES)}, not {engine}")
    if not 32 <= preview_size <= 512:
        raise BrushworkError("preview size must be 32..512 px")
    if not Path(taste_db).is_file():
        raise BrushworkError(f"{taste_db}: no such ratings database (rate with 'brushwork judge rate' first)")
    with RatingsStore(taste_db) as store:
        taste = TasteModel.fit(store, user)
    photo = open_image(content, fixed.pop("max_pixels", DEFAULT_MAX_PIXELS))
    if engine == "stylize":
        space, trials = GATYS_SPACE, trials or 6
        fixed.pop("iterations", None)
        fixed.pop("image_size", None)

        def render(settings: dict) -> Image.Image:
            return stylize(photo, styles, image_size=preview_size, iterations=preview_iterations, device=device,
                           **{**fixed, **settings})  # fmt: skip
    else:
        loaded = model_of(model, FAST_KIND if engine == "fast" else ADAIN_KIND, device=device)
        space = FAST_SPACE if engine == "fast" else ADAIN_SPACE
        fixed.pop("image_size", None)
        apply = fast_apply if engine == "fast" else partial(adain_apply, styles=styles)

        def render(settings: dict) -> Image.Image:
            return apply(loaded, photo, image_size=preview_size, **{**fixed, **settings})

    search = best_settings(taste, render, space, trials=trials)
    return {"settings": search.best, "ranked": search.results, "user": user}
