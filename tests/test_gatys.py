import numpy as np
import pytest
import torch

import brushwork
from brushwork.errors import BrushworkError
from brushwork.media import image_to_tensor
from brushwork.records import record_of
from brushwork.style import color
from brushwork.style.gatys import GatysEngine, StyleConfig
from brushwork.style.losses import gram_matrix, relative_mse
from tests.conftest import make_image

CONTENT = make_image(48, 32, 0, "gradient")
STYLE = make_image(48, 32, 1, "stripes")
STYLE2 = make_image(40, 40, 2, "noise")


def run(net, styles=(STYLE,), **options):
    options.setdefault("image_size", 48)
    options.setdefault("iterations", 15)
    return GatysEngine(net).run(CONTENT, list(styles), StyleConfig(**options))


def style_distance(net, img, style):
    layers = list(net.style_layers)
    with torch.no_grad():
        a = net(image_to_tensor(img), layers)
        b = net(image_to_tensor(style), layers)
    return sum(relative_mse(gram_matrix(a[k]), gram_matrix(b[k])).item() for k in layers)


def test_style_loss_falls(tiny_net):
    losses = []
    GatysEngine(tiny_net).run(
        CONTENT,
        [STYLE],
        StyleConfig(image_size=48, iterations=30),
        on_step=lambda s: losses.append(s.losses["style"].item()),
    )
    assert len(losses) == 30
    assert losses[-1] < 0.2 * losses[0]


def test_output_size_follows_image_size(tiny_net):
    assert run(tiny_net, image_size=30, iterations=2).size == (30, 20)


def test_seed_reproducibility(tiny_net):
    a = np.asarray(run(tiny_net, init="noise", seed=1))
    b = np.asarray(run(tiny_net, init="noise", seed=1))
    c = np.asarray(run(tiny_net, init="noise", seed=2))
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_blend_weights(tiny_net):
    only_first = np.asarray(run(tiny_net, styles=(STYLE, STYLE2), style_blend=[1.0, 0.0]))
    single = np.asarray(run(tiny_net, styles=(STYLE,)))
    assert np.abs(only_first.astype(int) - single.astype(int)).max() <= 1
    mixed = run(tiny_net, styles=(STYLE, STYLE2), style_blend=[0.5, 0.5], iterations=40)
    pure1 = run(tiny_net, styles=(STYLE,), iterations=40)
    pure2 = run(tiny_net, styles=(STYLE2,), iterations=40)
    # A half-and-half blend lands between the two pure results in style distance to each style.
    assert style_distance(tiny_net, pure1, STYLE) < style_distance(tiny_net, mixed, STYLE)
    assert style_distance(tiny_net, pure2, STYLE2) < style_distance(tiny_net, mixed, STYLE2)


def test_luminance_preservation_keeps_content_colours(tiny_net):
    out = image_to_tensor(run(tiny_net, preserve_colors="luminance", style_weight=100))
    plain = image_to_tensor(run(tiny_net, style_weight=100))
    content = image_to_tensor(CONTENT)
    chroma = lambda t: color.rgb_to_yiq(t)[:, 1:]  # noqa: E731
    assert (chroma(out) - chroma(content)).abs().mean() < 0.5 * (chroma(plain) - chroma(content)).abs().mean()


def test_histogram_preservation_runs_and_differs(tiny_net):
    a = np.asarray(run(tiny_net, preserve_colors="histogram"))
    b = np.asarray(run(tiny_net))
    assert not np.array_equal(a, b)


def test_adam_and_init_image(tiny_net):
    adam = run(tiny_net, optimizer="adam", learning_rate=0.05, iterations=5)
    assert adam.size == (48, 32)
    out = GatysEngine(tiny_net).run(
        CONTENT, [STYLE], StyleConfig(image_size=48, iterations=1, init="image"), init_image=STYLE2
    )
    assert out.size == (48, 32)


def test_multiscale_plan_and_run(tiny_net):
    assert StyleConfig(image_size=2048).plan_scales() == [512, 1024, 2048]
    assert StyleConfig(image_size=800).plan_scales() == [800]
    assert StyleConfig(image_size=96, scales=[24, 48, 500]).plan_scales() == [24, 48, 96]
    steps = []
    out = GatysEngine(tiny_net).run(
        CONTENT,
        [STYLE],
        StyleConfig(image_size=64, scales=[32], iterations=4, fine_iterations=3),
        on_step=lambda s: steps.append((s.scale, tuple(s.image.shape[-2:]))),
    )
    assert out.size == (64, 43)
    assert steps[0] == (32, (21, 32)) and steps[-1] == (64, (43, 64)) and len(steps) == 7


@pytest.mark.parametrize(
    "options,message",
    [
        ({"image_size": 8}, "between 16 and 16384"),
        ({"image_size": 100_000}, "between 16 and 16384"),
        ({"style_scale": 0.01}, "style scale"),
        ({"iterations": 0}, "at least 1"),
        ({"style_blend": [1.0, 2.0]}, "blend weights"),
        ({"style_weight": float("nan")}, "finite"),
        ({"optimizer": "sgd"}, "optimizer"),
        ({"content_layers": ["relu9_9"]}, "no layer relu9_9"),
    ],
)
def test_bad_options(tiny_net, options, message):
    with pytest.raises(BrushworkError, match=message):
        run(tiny_net, **options)


def test_python_api_returns_image_with_parameters(tiny_net, images):
    out = brushwork.stylize(
        images["content"],
        [images["style"], images["style2"]],
        backbone=tiny_net,
        image_size=32,
        iterations=2,
        style_blend=[2, 1],
        seed=5,
    )
    record = record_of(out)
    params = record.parameters
    assert out.size == (32, 21) and record.engine == "stylize" and record.seed == 5
    assert params["seed"] == 5 and params["style_blend_weights"] == [2, 1] and params["backbone"] == "tiny"
    assert record.inputs["styles"][1]["name"] == "style2.png" and len(record.inputs["content"]["sha256"]) == 64
    assert out.info["parameters"].startswith("brushwork stylize: content.png in the style of style.png + style2.png")


def test_continue_from_a_later_step(tiny_net):
    steps = []
    cfg = StyleConfig(image_size=64, scales=[32], iterations=4, fine_iterations=3)
    GatysEngine(tiny_net).run(
        CONTENT, [STYLE], cfg, init_image=STYLE2, start_step=5, on_step=lambda s: steps.append((s.step, s.scale))
    )
    assert steps == [(6, 64), (7, 64)]  # the first scale was done, and one step of the second
    with pytest.raises(BrushworkError, match="needs an init image"):
        GatysEngine(tiny_net).run(CONTENT, [STYLE], cfg, start_step=5)
    with pytest.raises(BrushworkError, match="has 7 steps"):
        GatysEngine(tiny_net).run(CONTENT, [STYLE], cfg, init_image=STYLE2, start_step=7)
