"""Rules that keep the layout as designed (DESIGN.md: what may import what): the engines know nothing of
the faces, the judge or protection; the faces go through the API; pipelines never import each other; and
no module imports itself round a circle (imports inside functions count too: they only hide a cycle
until run time)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "brushwork"
#: What the command line must not reach around the API for.
ENGINE_PACKAGES = ("brushwork.style", "brushwork.gan", "brushwork.backbones")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imported(path: Path, known: dict[str, Path]) -> set[str]:
    """The brushwork modules ``path`` imports anywhere in it (``from pkg import mod`` counts as ``pkg.mod``)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else [])
                )
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base)
    return {m for m in found if m in known and m != name}


def test_cli_goes_through_the_api():
    known = modules()
    offenders = []
    for name, path in known.items():
        if name.startswith("brushwork.cli"):
            offenders += [f"{name} imports {m}" for m in imported(path, known) if m.startswith(ENGINE_PACKAGES)]
    assert not offenders, offenders


FACES = ("brushwork.api", "brushwork.cli", "brushwork.studio")
PIPELINES = "brushwork.pipelines"
#: (modules, what they must not import, exceptions: (importer, imported) pairs allowed with a reason).
RULES = [
    # The engines know nothing of what uses them; the GAN's evaluation takes the judge's distribution
    # metrics (FID/KID/precision-recall), as metrics packages are used by trainers.
    (("brushwork.style", "brushwork.gan"),
     (*FACES, PIPELINES, "brushwork.judge", "brushwork.protect"),
     {("brushwork.gan.evaluate", "brushwork.judge.distribution")}),
    # The judge reads through backbones, media and the style losses; never the engines or the faces.
    (("brushwork.judge",),
     (*FACES, PIPELINES, "brushwork.gan", "brushwork.protect", "brushwork.style"),
     {("brushwork.judge.scores", "brushwork.style.losses"), ("brushwork.judge.taste", "brushwork.style.losses")}),
    # Protection works on files and records.
    (("brushwork.protect",),
     (*FACES, PIPELINES, "brushwork.gan", "brushwork.style", "brushwork.judge", "brushwork.backbones"), set()),
    # Pipelines are the engines' glue: they never import the faces.
    ((PIPELINES,), FACES, set()),
]  # fmt: skip


def _within(name: str, prefixes) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def test_each_room_imports_only_what_the_design_allows():
    known = modules()
    offenders = []
    for rooms, forbidden, allowed in RULES:
        for name, path in known.items():
            if not _within(name, rooms):
                continue
            offenders += [f"{name} imports {m}" for m in imported(path, known)
                          if _within(m, forbidden) and (name, m) not in allowed]  # fmt: skip
    assert not offenders, offenders


def test_pipelines_never_import_each_other():
    known = modules()
    shared = {PIPELINES, f"{PIPELINES}.common"}
    offenders = [f"{name} imports {m}" for name, path in known.items() if name.startswith(PIPELINES + ".")
                 for m in imported(path, known)
                 if m.startswith(PIPELINES) and m not in shared and m != name]  # fmt: skip
    assert not offenders, offenders


def test_faces_reach_the_engines_through_the_api():
    """The CLI and the studio never import an engine, a pipeline, records or media: what they use of them
    comes through ``brushwork.api`` (the judge's and protection's public functions are theirs to call)."""
    known = modules()
    below = (*ENGINE_PACKAGES, PIPELINES, "brushwork.records", "brushwork.media")
    # Verbs that start without torch (#21) read images and records through their public functions.
    torch_free = {("brushwork.cli.info", "brushwork.records"), ("brushwork.cli.protect", "brushwork.media"),
                  ("brushwork.cli.judge", "brushwork.media")}  # fmt: skip
    offenders = [f"{name} imports {m}" for name, path in known.items()
                 if _within(name, ("brushwork.cli", "brushwork.studio"))
                 for m in imported(path, known) if _within(m, below) and (name, m) not in torch_free]  # fmt: skip
    assert not offenders, offenders


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as [a, b, …, a], or None."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_cycle_finder_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_no_import_cycles():
    known = modules()
    graph = {name: imported(path, known) for name, path in known.items()}
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_api_only_names_what_lives_below_it():
    """``brushwork.api`` is the stable set of public names and nothing else: imports, aliases, constants and
    ``__all__``. A function or class written there would be a second home for code that belongs to an engine,
    a pipeline or the ground floor (and would be missed by the CLI's and studio's layout rules)."""
    path = PACKAGE / "api.py"
    allowed = (ast.Import, ast.ImportFrom, ast.Assign, ast.AnnAssign)
    tree = ast.parse(path.read_text(), str(path))
    docstring = [tree.body[0]] if ast.get_docstring(tree) else []
    offenders = [f"api.py:{node.lineno}: {type(node).__name__} {getattr(node, 'name', '')}".rstrip()
                 for node in tree.body if node not in docstring and not isinstance(node, allowed)]  # fmt: skip
    assert not offenders, offenders
