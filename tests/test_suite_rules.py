"""Rules for the test suite itself (issue 22 §4): no module under tests/ or benchmarks/ imports
from a test module.

Shared helpers live in support modules named for what they hold (tests/send_runs.py,
tests/web_clients.py, ...) and shared fixtures in tests/plugins/, registered in conftest.py, so a
test file can be moved, split or deleted without breaking another one.
"""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def _is_test_module(dotted: str) -> bool:
    return any(part.startswith("test_") for part in dotted.split("."))


def imports_of_test_modules(path: Path) -> list[str]:
    """'line: module' for each import in `path` of a tests/test_* module, in any spelling:
    `from tests.test_x import y`, `import tests.test_x`, `from tests import test_x`,
    `from .test_x import y`, also inside functions."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            names = [base] if _is_test_module(base) else [f"{base}.{alias.name}".lstrip(".")
                                                          for alias in node.names]
        else:
            continue
        relative = isinstance(node, ast.ImportFrom) and node.level > 0
        found += [f"{node.lineno}: {name}" for name in names
                  if (relative or name.startswith("tests.")) and _is_test_module(name)]
    return found


def test_no_module_under_tests_or_benchmarks_imports_from_a_test_module():
    modules = sorted(TESTS.rglob("*.py")) + sorted((TESTS.parent / "benchmarks").rglob("*.py"))
    offenders = {str(path.relative_to(TESTS.parent)): found for path in modules
                 if (found := imports_of_test_modules(path))}
    assert offenders == {}, "move the shared helper into a support module or tests/plugins/"


def test_every_spelling_of_a_test_module_import_is_caught(tmp_path):
    sample = tmp_path / "test_sample.py"
    sample.write_text("\n".join([
        "from tests.test_send_ses import readers",
        "import tests.test_ledger",
        "from tests import test_admin",
        "from .test_dispatch import run",
        "from . import test_stats",
        "def later():",
        "    from tests.test_web_app import subscribe",
        "from tests.send_runs import readers",
        "from tests.plugins.webhook import READER",
        "import tests.fakes",
        "from mailer.store import ledger",
    ]) + "\n")
    assert imports_of_test_modules(sample) == [
        "1: tests.test_send_ses", "2: tests.test_ledger", "3: tests.test_admin",
        "4: test_dispatch", "5: test_stats", "7: tests.test_web_app"]
