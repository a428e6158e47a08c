"""Start-up: the verbs that need no network must not load torch (seconds), and ``import brushwork``
stays cheap with the API loaded on first use (#21). Figures: benchmarks/startup.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from brushwork.records import new_record, write_image

ROOT = Path(__file__).resolve().parents[1]

# Runs a command line in a fresh interpreter, then prints its exit code and the torch modules it loaded.
WRAPPER = """
import json, sys
from brushwork.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
sys.stdout.flush()
print("\\n" + json.dumps({"code": code, "torch": sorted(m for m in sys.modules if m.split(".")[0] == "torch")}))
"""


def run_fresh(args: list[str], cwd: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", WRAPPER, *args], capture_output=True, text=True, timeout=120,
                          cwd=cwd, env=env)  # fmt: skip
    assert "Traceback" not in proc.stderr, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def output(tmp_path_factory) -> Path:
    """A file brushwork wrote: a picture with its record (made without an engine)."""
    folder = tmp_path_factory.mktemp("startup")
    record = new_record("gatys", {"iterations": 3}, seed=0)
    record.finish()
    return write_image(Image.new("RGB", (64, 48), (200, 120, 40)), folder / "out.png", record)


@pytest.mark.parametrize(
    "argv, code",
    [
        (["--help"], 0),
        (["--version"], 0),
        ([], 2),
        (["info", "{out}"], 0),
        (["verify", "{out}", "--registry", "{dir}/r.sqlite"], 1),  # a record but no signature: not intact
        (["registry", "find", "{out}", "--registry", "{dir}/r.sqlite"], 1),
        (["keys", "show"], 0),
        (["keys", "init", "--dir", "{dir}/keys"], 0),
        (
            [
                "judge",
                "rate",
                "--db",
                "{out_dir}/ratings.db",
                "--user",
                "ann",
                "--winner",
                "{out}",
                "--loser",
                "{photo}",
            ],
            0,
        ),
        (["judge", "rank", "--db", "{out_dir}/ratings.db"], 0),  # after rate, in the same folder
        (["stylize", "--help"], 0),  # the one control: a verb that does load torch
    ],
)
def test_verbs_without_a_network_do_not_load_torch(output, argv, code, tmp_path):
    photo = ROOT / "brushwork" / "examples" / "tubingen.jpg"
    argv = [a.format(out=output, out_dir=output.parent, dir=tmp_path, photo=photo) for a in argv]
    result = run_fresh(argv, tmp_path)
    assert result["code"] == code
    if argv[:1] == ["stylize"]:
        assert "torch" in result["torch"]  # the check can tell
    else:
        assert result["torch"] == [], f"brushwork {' '.join(argv)} loaded torch"


def test_import_brushwork_is_cheap_and_the_api_is_there_on_first_use(tmp_path):
    code = (
        "import sys, brushwork; before = 'torch' in sys.modules; save = brushwork.save; "
        "print(before, 'torch' in sys.modules, 'save' in dir(brushwork), brushwork.BrushworkError.__name__)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})  # fmt: skip
    assert proc.stdout.split() == ["False", "True", "True", "BrushworkError"], proc.stderr
    import brushwork

    with pytest.raises(AttributeError):
        brushwork.no_such_function  # noqa: B018
    for name in brushwork.__all__:
        assert getattr(brushwork, name) is not None


def test_the_verb_list_matches_the_verbs_modules():
    """``brushwork --help`` lists each verb from cli.VERBS without importing its module: the same lines
    as the modules register."""
    import argparse

    from brushwork.cli import VERBS, build_parser

    parser, handlers = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    registered = {c.dest: c.help for c in sub._choices_actions}
    assert registered == {verb: text for verb, (_, text) in VERBS.items()}
    assert set(handlers) == set(VERBS)
    for verb, (module, _) in VERBS.items():
        assert verb in build_parser(verb)[1], f"{verb} is not registered by brushwork.cli.{module}"
