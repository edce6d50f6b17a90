"""The import graph, from the sources' ``ast``: libraries below apps, no circles, no private names across modules."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import REPO

PACKAGES = ("harness", "malt_train", "leaderboard", "malt_apps")
#: What each package may import from the project (its layer and the ones below it).
ALLOWED = {
    "harness": {"harness"},
    "malt_train": {"harness", "malt_train"},
    "leaderboard": {"harness", "leaderboard"},
    "malt_apps": set(PACKAGES),
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(packages: tuple[str, ...] = PACKAGES) -> dict[str, set[tuple[str, str]]]:
    """Module -> ``(imported module, imported name or "")`` of every import of the project's packages by the
    modules of ``packages``, at any depth."""
    graph: dict[str, set[tuple[str, str]]] = {}
    for pkg in packages:
        for path in sorted((REPO / pkg).rglob("*.py")):
            mod, found = module_name(path), set()
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    found |= {(a.name, "") for a in node.names}
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    found |= {(node.module, a.name) for a in node.names}
            graph[mod] = {(m, n) for m, n in found if m.split(".")[0] in PACKAGES}
    return graph


def project_modules(graph: dict) -> dict[str, set[str]]:
    """Module -> the project modules it imports (``from pkg import module`` counts as that module)."""
    out = {}
    for mod, found in graph.items():
        out[mod] = {f"{m}.{n}" if f"{m}.{n}" in graph else m for m, n in found} & set(graph)
    return out


def test_libraries_import_nothing_above_them():
    wrong = [
        f"{mod} -> {m}"
        for mod, found in imports().items()
        for m, _ in found
        if m.split(".")[0] not in ALLOWED[mod.split(".")[0]]
    ]
    assert wrong == []


def test_leaderboard_reads_grades_and_never_grades():
    graded = [f"{mod} -> {m}" for mod, found in imports().items() if mod.startswith("leaderboard") for m, _ in found]
    assert not [
        x for x in graded if x.endswith(("harness.tasks.grading", "harness.tasks.voting", "harness.run.evaluate"))
    ]


def test_no_import_circles():
    graph = project_modules(imports())
    state: dict[str, int] = {}
    cycles = []

    def visit(mod: str, stack: list[str]) -> None:
        state[mod] = 1
        for dep in sorted(graph.get(mod, ())):
            if dep == mod or dep.startswith(mod + "."):  # a package importing its own submodules
                continue
            if state.get(dep) == 1:
                cycles.append(" -> ".join([*stack[stack.index(dep) :], dep]))
            elif dep not in state:
                visit(dep, [*stack, dep])
        state[mod] = 2

    for mod in sorted(graph):
        if mod not in state:
            visit(mod, [mod])
    assert cycles == []


def test_no_private_name_is_imported_from_another_module():
    private = [
        f"{mod}: from {m} import {n}"
        for mod, found in imports((*PACKAGES, "tests", "bench")).items()
        for m, n in found
        if n.startswith("_") and not n.startswith("__")
    ]
    assert private == []


def test_libraries_name_no_app():
    """No library module refers to an app by name either (say, a module name in a string to run)."""
    named = [
        f"{path.relative_to(REPO)}:{node.lineno}"
        for pkg in ALLOWED
        if "malt_apps" not in ALLOWED[pkg]
        for path in sorted((REPO / pkg).rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and "malt_apps" in node.value
    ]
    assert named == []


#: harness/'s rooms by level, lowest first. A module imports only its own room and the rooms of lower levels (rooms
#: of one level are peers that never import each other); a module's room is the longest prefix that names it.
HARNESS_ROOMS: tuple[dict[str, tuple[str, ...]], ...] = (
    {"core": ("harness.core",)},
    {"tasks": ("harness.tasks",)},
    {"lm-eval's facts": ("harness.lmeval.compat", "harness.lmeval.tasks", "harness.lmeval.needs")},
    {"inference": ("harness.inference",)},
    {"solver": ("harness.solver",)},
    {"spec": ("harness.spec", "harness.provenance", "harness.tracking")},
    {"our tasks": ("harness.run",), "lm-eval's tasks": ("harness.lmeval",)},
    {"public face": ("harness",)},
)


def harness_room(module: str) -> tuple[int, str]:
    """The level and the room of a harness module."""
    found = (-1, -1, "")
    for level, rooms in enumerate(HARNESS_ROOMS):
        for room, prefixes in rooms.items():
            for p in prefixes:
                if (module == p or module.startswith(p + ".")) and len(p) > found[1]:
                    found = (level, len(p), room)
    return found[0], found[2]


def test_harness_rooms_import_only_lower_rooms():
    wrong = []
    for mod, deps in sorted(project_modules(imports(("harness",))).items()):
        level, room = harness_room(mod)
        for dep in sorted(deps):
            dep_level, dep_room = harness_room(dep)
            if dep_room != room and dep_level >= level:
                wrong.append(f"{mod} ({room}) -> {dep} ({dep_room})")
    assert wrong == []


def test_harness_rooms_are_small_and_say_what_lives_there():
    """No folder of harness/ holds more than 12 modules; every package's ``__init__`` says what lives there."""
    for init in sorted((REPO / "harness").rglob("__init__.py")):
        folder = init.parent
        modules = [p for p in folder.iterdir() if p.suffix == ".py" and p.name != "__init__.py"]
        modules += [p for p in folder.iterdir() if (p / "__init__.py").is_file()]
        assert len(modules) <= 12, f"{folder.relative_to(REPO)}: {len(modules)} modules"
        doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8")))
        assert doc, f"{init.relative_to(REPO)}: no docstring"
