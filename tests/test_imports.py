"""Run time stays apart from training: no module the daemon or a command other than `aimusicd train`
uses imports daemon.training (its corpus fetching, fakes and fitting), at the top or inside a
function. And no two modules import each other at module level, directly or round a loop."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import daemon

PACKAGE = Path(daemon.__file__).parent
BUILD_TIME = ("daemon.training", "daemon.cli.train")
# Optional extras (`aimusicd batch --ray`): importable only where they are installed.
OPTIONAL = ("daemon.batch.on_ray",)


def all_modules() -> list[str]:
    """Every module file under daemon/ (daemon/cli is a namespace package: walk the files)."""
    names = []
    for path in PACKAGE.rglob("*.py"):
        parts = ("daemon",) + path.relative_to(PACKAGE).with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return sorted(names)


def runtime_modules() -> list[str]:
    return [n for n in all_modules() if not n.startswith(BUILD_TIME) and n != "daemon.__main__"]


def module_path(name: str) -> Path:
    rel = Path(*name.split(".")[1:])
    package = PACKAGE / rel / "__init__.py"
    return package if package.is_file() else (PACKAGE / rel).with_suffix(".py")


def _imports(name: str, nodes) -> set[str]:
    """The absolute names the import statements among `nodes` of module `name` name."""
    path = module_path(name)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")
            base = base[:len(base) - node.level + 1] if node.level else []
            target = ".".join(base + ([node.module] if node.module else []))
            found.add(target)
            found |= {f"{target}.{a.name}" for a in node.names}
    return found


def _tree(name: str) -> ast.Module:
    path = module_path(name)
    return ast.parse(path.read_text(), str(path))


def imported_names(name: str) -> set[str]:
    """Every module an import statement anywhere in the module names, resolved to absolute names."""
    return _imports(name, ast.walk(_tree(name)))


def module_level_imports(name: str) -> set[str]:
    """The daemon modules `name` imports when it is imported: statements at its top level (also
    inside top-level if/try blocks, except `if TYPE_CHECKING:`), not inside functions."""
    def statements(body):
        for node in body:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                continue
            yield node
            if isinstance(node, (ast.If, ast.Try)):
                yield from statements(node.body + node.orelse + [s for h in getattr(node, "handlers", [])
                                                                 for s in h.body])
    return _imports(name, statements(_tree(name).body))


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The groups of modules that import one another round a loop (strongly connected components
    of more than one module)."""
    order, low, stack, cycles = {}, {}, [], []

    def visit(v: str) -> None:
        order[v] = low[v] = len(order)
        stack.append(v)
        for w in graph[v]:
            if w not in order:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], order[w])
        if low[v] == order[v]:
            group = []
            while not group or group[-1] != v:
                group.append(stack.pop())
            if len(group) > 1:
                cycles.append(sorted(group))

    for v in graph:
        if v not in order:
            visit(v)
    return cycles


def test_the_runtime_modules_are_found():
    names = runtime_modules()
    assert {"daemon.analysis", "daemon.cli.main", "daemon.cli.eval_cmd", "daemon.services.daemon",
            "daemon.learning.features", "daemon.evaluation.table", "daemon.evaluation.codecs"} <= set(names)
    assert not any(n.startswith("daemon.training") for n in names)


def test_no_runtime_module_names_training_in_an_import():
    offenders = {n: sorted(i for i in imported_names(n) if i.startswith("daemon.training"))
                 for n in runtime_modules()}
    assert {n: i for n, i in offenders.items() if i} == {}


def test_importing_every_runtime_module_loads_no_training_module():
    code = f"""
import importlib, json, sys
missing = {{}}
for name in {json.dumps(runtime_modules())}:
    try:
        importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name.split(".")[0] == "daemon":
            raise
        missing[name] = exc.name
print(json.dumps({{"training": sorted(m for m in sys.modules if m.startswith("daemon.training")),
                  "missing": missing}}))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=240,
                         cwd=PACKAGE.parent)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["training"] == []
    missing = {m: dep for m, dep in result["missing"].items() if m not in OPTIONAL}
    if missing:   # a dependency not installed here: what was importable is free of training
        pytest.skip(f"{len(missing)} modules not importable here (missing {', '.join(sorted(set(missing.values())))})")


def test_import_cycles_are_found():
    assert import_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert import_cycles({"a": {"b"}, "b": set()}) == []


def test_no_modules_import_each_other_at_module_level():
    modules = set(all_modules())
    # a module's own packages run before it whatever it imports: an edge to one is no loop
    graph = {m: {t for t in module_level_imports(m) & modules if t != m and not m.startswith(t + ".")}
             for m in modules}
    assert import_cycles(graph) == []


def test_the_command_line_starts_without_torch():
    """`aimusicd send` runs once per rendered file from a DAW script: its start must not pay for
    torch's import (seconds), and neither must `--help` or the parser of any subcommand."""
    code = """
import sys
from daemon.cli import main, send
main.build_parser()
print(sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "demucs")))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         cwd=PACKAGE.parent)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip() == "[]"
