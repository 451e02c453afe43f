"""The rooms keep to their doors: the running worker imports nothing of the operator's tools."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def imported(folder: str) -> dict[str, set[str]]:
    """Every module each file of the folder imports, by file."""
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / folder).rglob("*.py")):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module)
            elif isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
        found[str(path.relative_to(ROOT))] = names
    return found


def test_the_worker_and_its_tracing_import_nothing_of_the_tools() -> None:
    """worker/service, worker/tracing and the drain's room reach no module under worker.tools."""
    imports = {**imported("worker/service"), **imported("worker/tracing"), **imported("worker/dead_letters")}
    assert "worker/dead_letters/drain.py" in imports and "worker/tracing/replay.py" in imports
    reaching = {
        path: sorted(name for name in names if name == "worker.tools" or name.startswith("worker.tools."))
        for path, names in imports.items()
        if path.startswith(("worker/service", "worker/tracing")) or path.endswith("drain.py")
    }
    assert {path: names for path, names in reaching.items() if names} == {}
