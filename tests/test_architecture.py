"""The dependency rule in the README, held by import-linter's contracts in pyproject.toml."""

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_import_contracts_hold():
    lint = shutil.which("lint-imports") or str(Path(sys.executable).parent / "lint-imports")
    result = subprocess.run([lint, "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_config_errors_are_one_line(tmp_path):
    env = {"MAILER_SEND_RATE": "fast", "PATH": "/usr/bin:/bin"}
    mailer = str(Path(sys.executable).parent / "mailer")
    result = subprocess.run([mailer, "db", "current"], cwd=tmp_path, env=env,
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert "MAILER_SEND_RATE" in result.stderr
    assert "Traceback" not in result.stderr
