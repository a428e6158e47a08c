"""Made from the settings: for every engine and every one of its settings, the CLI's flag and the studio's
field reach the engine's pipeline with the same value, and a value out of its range is refused with the
same words on both faces. A setting added to an engine's ``Settings`` is covered here without a new line.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import pytest

from brushwork import api
from brushwork.cli import main
from brushwork.settings import Control

pytest.importorskip("fastapi")
from brushwork.studio.config import Limits  # noqa: E402
from brushwork.studio.engines import ENGINES, Inputs, RunContext  # noqa: E402

HERE = Path(__file__).resolve().parent
OLD = HERE / "fixtures" / "old_records"
EXAMPLES = HERE.parent / "brushwork" / "examples"
FAST, ADAIN = EXAMPLES / "starry_night-fast.safetensors", EXAMPLES / "adain-lite0.safetensors"
PHOTO, STYLE, CLIP, RUN = OLD / "photo.png", OLD / "style.png", OLD / "clip.mp4", OLD / "gan-run"

#: Per engine: its pipeline module, the CLI's words before the settings, and the studio job's inputs.
FACES = {
    "stylize": ("stylize", lambda out: ["stylize", str(PHOTO), "--style", str(STYLE), "-o", str(out / "o.png")],
                Inputs(PHOTO, [STYLE])),
    "fast": ("fast", lambda out: ["fast", "apply", str(FAST), str(PHOTO), "-o", str(out / "o.png")],
             Inputs(PHOTO, model=FAST)),
    "adain": ("adain", lambda out: ["adain", "apply", str(ADAIN), str(PHOTO), "--style", str(STYLE), "-o",
                                    str(out / "o.png")], Inputs(PHOTO, [STYLE], model=ADAIN)),
    "video": ("video", lambda out: ["video", str(CLIP), "--model", str(FAST), "-o", str(out / "o.mp4")],
              Inputs(CLIP, model=FAST)),
    "gan-sample": ("gan_sample", lambda out: ["gan", "sample", str(RUN), "-o", str(out / "samples")],
                   Inputs(model=RUN)),
}  # fmt: skip
#: Values a setting's type and range cannot tell (they must agree with the run's other inputs).
KNOWN = {"backbone": "lite0", "style_blend_weights": [1.0], "content_layers": ["relu2_1"],
         "style_layers": ["relu1_1", "relu2_1"], "scales": [32, 64], "image_size": 48, "style_size": 40,
         "tile": 32, "style_text": "a stormy sea", "clip_crop_fraction": 0.5}  # fmt: skip
#: The studio's own bounds set wide, so that the engine's range is what refuses.
WIDE = Limits(max_image_size=10**6, max_iterations=10**6, max_seeds=10**4, video_frames=10**6)
#: Refusals of an engine's own validate (beyond a single setting's range).
REFUSED = [("stylize", "image_size", 8), ("stylize", "tile", 8), ("stylize", "style_scale", 0.0001),
           ("adain", "preserve_colors", "sepia"), ("video", "audio_reactive", ["loud"])]  # fmt: skip


class Reached(Exception):
    """The pipeline was reached: the settings it got are kept, and nothing runs."""


def value_for(c: Control):
    """A valid value other than the default: from the choices, the range, or the kind."""
    if c.name in KNOWN:
        return KNOWN[c.name]
    if c.choices:
        other = next(x for x in c.choices if x != c.default)
        return [other] if c.kind == "names" else other
    if c.kind == "bool":
        return not c.default
    if c.kind in ("int", "float"):
        low = c.low if c.low is not None else 1
        top = c.high if c.high is not None else c.below if c.below is not None else low + 8
        value = low + (top - low) * 0.375
        value = round(value) if c.kind == "int" else value
        return value + 1 if value == c.default else value
    if c.kind == "str":
        return f"{c.default}-other"
    if c.kind == "ints":
        return [3, 5]
    if c.kind == "floats":
        return [0.25, 0.75]
    return ["a", "b"]


def flags_for(c: Control, value) -> list[str]:
    """The value as typed on the command line."""
    if c.kind == "bool":
        return [c.flag if value else "--no-" + c.flag[2:]]
    if (c.kind == "names" and c.choices) or c.parts:  # several words: --classifier-range 0.25 0.75
        return [c.flag, *map(str, value)]
    return [c.flag, ",".join(map(str, value)) if isinstance(value, list) else str(value)]


def catch(monkeypatch, module: str) -> list:
    seen = []

    def run(inputs, settings, *args, **kwargs):
        seen.append(settings)
        raise Reached

    monkeypatch.setattr(importlib.import_module(f"brushwork.pipelines.{module}"), "run", run)
    return seen


def context(tmp_path) -> RunContext:
    return RunContext(lambda *a: None, "cpu", 10**6, lambda suffix: tmp_path / f"out{suffix}", tmp_path / "work")


@pytest.mark.parametrize("engine", sorted(FACES))
def test_every_setting_reaches_the_engine_alike_from_both_faces(engine, tmp_path, monkeypatch):
    module, argv, inputs = FACES[engine]
    settings_cls = api.SETTINGS[engine]
    controls = api.controls(settings_cls)
    assert [c.name for c in ENGINES[engine].controls()] == [c.name for c in controls]  # the form is the settings
    values = {c.name: value_for(c) for c in controls}
    expected = settings_cls.from_values(values)
    for c in controls:
        assert getattr(expected, c.field) != c.default, f"{engine}: {c.name} is not moved off its default"
    seen = catch(monkeypatch, module)

    flags = [word for c in controls for word in flags_for(c, values[c.name])]
    with pytest.raises(Reached):
        main([*argv(tmp_path), *flags, "-q", "--no-watermark", "--no-register", "--no-sign"])
    studio = ENGINES[engine]
    params = json.loads(json.dumps(values))  # as the browser sends them
    clean = studio.check(params, len(inputs.styles), True, True, WIDE)
    with pytest.raises(Reached):
        studio.run(inputs, clean, context(tmp_path))

    from_cli, from_studio = seen
    for c in controls:
        assert getattr(from_cli, c.field) == getattr(expected, c.field), f"{engine}: CLI {c.flag}"
        assert getattr(from_studio, c.field) == getattr(expected, c.field), f"{engine}: studio {c.name}"


def out_of_range() -> list[tuple[str, Control, object]]:
    by_name = {(e, c.name): c for e in FACES for c in api.controls(api.SETTINGS[e])}
    cases = [(engine, by_name[engine, name], value) for engine, name, value in REFUSED]
    for engine in sorted(FACES):
        for c in api.controls(api.SETTINGS[engine]):
            if c.low is not None:
                cases.append((engine, c, c.low - 1))
            if c.high is not None:
                cases.append((engine, c, c.high + 1))
            if c.below is not None:
                cases.append((engine, c, c.below))
    return cases


@pytest.mark.parametrize(("engine", "control", "value"), out_of_range(), ids=lambda x: getattr(x, "name", str(x)))
def test_out_of_range_gives_the_same_words_on_both_faces(engine, control, value, tmp_path, capsys):
    module, argv, inputs = FACES[engine]
    given = {c.name: value_for(c) for c in api.controls(api.SETTINGS[engine]) if c.required}
    given[control.name] = value
    flags = [w for c in api.controls(api.SETTINGS[engine]) if c.name in given for w in flags_for(c, given[c.name])]
    assert main([*argv(tmp_path), *flags, "-q"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("brushwork: error: "), err
    with pytest.raises(api.BrushworkError) as refused:
        ENGINES[engine].check(json.loads(json.dumps(given)), len(inputs.styles), True, True, WIDE)
    assert err[0].removeprefix("brushwork: error: ") == str(refused.value)
    assert not list(tmp_path.iterdir())  # nothing written


def test_gan_train_flags_reach_the_pipeline_as_python_gives_them(tmp_path, monkeypatch):
    """``gan train``'s data flags (``--resolution``, ``--channels``, ``--conditional``) and every GanConfig flag
    arrive as the Python API's keywords do (the CLI once passed --resolution twice)."""
    from brushwork.pipelines import gan_train

    seen = []
    monkeypatch.setattr(gan_train, "run", lambda inputs, data, config, *a, **k: seen.append((data, config)))
    data_values = {c.name: value_for(c) for c in api.controls(api.GanData)}
    data_values["resolution"] = 64
    config_values = {c.name: value_for(c) for c in api.controls(api.GanConfig)}
    config_values["eval_extractor"] = "inception"
    flags = [w for c in api.controls(api.GanData) for w in flags_for(c, data_values[c.name])]
    flags += [w for c in api.controls(api.GanConfig) for w in flags_for(c, config_values[c.name])]
    main(["gan", "train", str(tmp_path / "data"), "--out", str(tmp_path / "run"), *flags, "-q"])
    api.gan_train(tmp_path / "data", tmp_path / "run", **data_values, **config_values)
    (cli_data, cli_config), (py_data, py_config) = seen
    assert cli_data == py_data == api.GanData(**data_values) and cli_data.resolution == 64
    assert cli_config == py_config == config_values


#: The GAN verbs that are no studio engine, with their settings: the CLI against the Python API.
GAN_VERBS = {
    "interpolate": (api.SETTINGS["gan-interpolate"], "interpolate",
                    lambda out: ["gan", "interpolate", str(RUN), "-o", str(out / "walk.gif"), "-q"],
                    lambda out, values: api.gan_interpolate(RUN, out / "walk.gif", **values)),
    "evaluate": (api.GanEvaluation, "evaluate", lambda out: ["gan", "evaluate", str(RUN)],
                 lambda out, values: api.gan_evaluate(RUN, **values)),
}  # fmt: skip


def gan_values(settings_cls) -> dict:
    values = {c.name: value_for(c) for c in api.controls(settings_cls)}
    if "extractor" in values:
        values["extractor"] = "inception"  # the extractors are listed at run time, not in the settings
    return values


@pytest.mark.parametrize("verb", sorted(GAN_VERBS))
def test_gan_walk_and_evaluation_flags_reach_the_pipeline_as_python_gives_them(verb, tmp_path, monkeypatch):
    """``gan interpolate``'s and ``gan evaluate``'s flags are made from their settings: each one, moved off its
    default on the command line, reaches the pipeline as the same keyword given to the Python API does."""
    from brushwork.pipelines import gan_sample, gan_train

    settings_cls, step, argv, python = GAN_VERBS[verb]
    seen = []
    monkeypatch.setattr(gan_sample if verb == "interpolate" else gan_train, step,
                        lambda inputs, settings, *a, **k: seen.append(settings) or {})  # fmt: skip
    values = gan_values(settings_cls)
    expected = settings_cls.from_values(values)
    controls = api.controls(settings_cls)
    for c in controls:
        assert getattr(expected, c.field) != c.default, f"{verb}: {c.name} is not moved off its default"
    assert main([*argv(tmp_path), *[w for c in controls for w in flags_for(c, values[c.name])]]) == 0
    python(tmp_path, values)
    from_cli, from_python = seen
    assert from_cli == from_python == expected


def gan_out_of_range() -> list[tuple[str, str, object]]:
    cases = [("interpolate", "seeds", [7]), ("evaluate", "classifier_range", [1.0, 0.0])]
    for verb, (settings_cls, *_) in sorted(GAN_VERBS.items()):
        for c in api.controls(settings_cls):
            if c.low is not None:
                cases.append((verb, c.name, c.low - 1))
            if c.high is not None:
                cases.append((verb, c.name, c.high + 1))
    return cases


@pytest.mark.parametrize(("verb", "name", "value"), gan_out_of_range())
def test_gan_walk_and_evaluation_refuse_alike_on_the_cli_and_in_python(verb, name, value, tmp_path, capsys):
    settings_cls, _, argv, python = GAN_VERBS[verb]
    control = next(c for c in api.controls(settings_cls) if c.name == name)
    assert main([*argv(tmp_path), *flags_for(control, value)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("brushwork: error: "), err
    with pytest.raises(api.BrushworkError) as refused:
        python(tmp_path, {name: value, **({"seeds": "0-3"} if verb == "interpolate" and name != "seeds" else {})})
    assert err[0].removeprefix("brushwork: error: ") == str(refused.value)
    assert not list(tmp_path.iterdir())  # nothing written


def test_gan_train_with_resolution_runs(tmp_path):
    from PIL import Image

    data = tmp_path / "data"
    data.mkdir()
    for i in range(4):
        Image.new("L", (40, 40), 60 * i).save(data / f"{i}.png")
    argv = ["gan", "train", str(data), "--out", str(tmp_path / "run"), "--resolution", "32", "--channels", "1",
            "--steps", "1", "--batch-size", "2", "--latent", "8", "--g-width", "4", "--d-width", "4",
            "--eval-every", "0", "-q"]  # fmt: skip
    assert main(argv) == 0
    options = json.loads((tmp_path / "run" / "options.json").read_text())
    assert options["config"]["resolution"] == 32 and (tmp_path / "run" / "checkpoint.safetensors").is_file()


def test_the_openapi_document_carries_each_engines_settings(tmp_path):
    from fastapi.testclient import TestClient

    from brushwork.studio.app import asgi_app
    from brushwork.studio.config import StudioConfig

    with TestClient(asgi_app(StudioConfig(data_dir=tmp_path), worker=False), base_url="http://127.0.0.1") as client:
        schemas = client.get("/openapi.json").json()["components"]["schemas"]
    for engine in FACES:
        schema = schemas[ENGINES[engine].schema_name]
        controls = api.controls(api.SETTINGS[engine])
        assert list(schema["properties"]) == [c.name for c in controls]
        for c in controls:
            shown = schema["properties"][c.name]
            shown = next(s for s in shown.get("anyOf", [shown]) if s["type"] != "null")
            shown = shown.get("items", shown) if shown["type"] == "array" else shown
            bounds = (shown.get("minimum"), shown.get("maximum"), shown.get("exclusiveMaximum"))
            assert bounds == (c.low, c.high, c.below)
            assert shown.get("enum", []) == list(c.choices)
    assert schemas["GanSampleSettings"]["required"] == ["seeds"]
