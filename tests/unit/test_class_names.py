"""One name, one class: no class name is defined twice under worker/, so that a name read
anywhere (a log, a traceback, a doc) says which class it is."""

import ast
from collections import defaultdict
from pathlib import Path

WORKER = Path(__file__).resolve().parents[2] / "worker"


def defined_twice(root: Path) -> dict[str, list[str]]:
    """Each class name defined in more than one place under `root`, with where."""
    places: dict[str, list[str]] = defaultdict(list)
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.ClassDef):
                places[node.name].append(f"{path.relative_to(root.parent)}:{node.lineno}")
    return {name: where for name, where in places.items() if len(where) > 1}


def test_no_class_name_is_defined_twice_under_worker() -> None:
    """An AST scan of worker/ finds every class name defined once only."""
    assert defined_twice(WORKER) == {}


def test_the_scan_finds_a_name_defined_twice(tmp_path: Path) -> None:
    """The control: two modules that each define `Outbox` are reported, with both places."""
    (tmp_path / "worker").mkdir()
    (tmp_path / "worker" / "a.py").write_text("class Outbox:\n    pass\n")
    (tmp_path / "worker" / "b.py").write_text("def f():\n    class Outbox:\n        pass\n")
    assert defined_twice(tmp_path / "worker") == {"Outbox": ["worker/a.py:1", "worker/b.py:2"]}
