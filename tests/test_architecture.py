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


def _layered_modules() -> set[str]:
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    contract = next(c for c in config["tool"]["importlinter"]["contracts"] if c["type"] == "layers")
    return {name.strip() for layer in contract["layers"] for name in layer.split("|")}


def _top_level_parts() -> set[str]:
    package = ROOT / "mailer"
    modules = {f"mailer.{p.stem}" for p in package.glob("*.py") if p.stem != "__init__"}
    packages = {f"mailer.{p.name}" for p in package.iterdir() if (p / "__init__.py").exists()}
    return modules | packages


def test_every_part_of_the_package_has_a_layer():
    """A new module outside every layer would escape the dependency rule unnoticed."""
    layered = _layered_modules()
    # events is split across layers: its parsers are pure, apply.py joins the store
    placed = {name for name in _top_level_parts()
              if name in layered or any(m.startswith(name + ".") for m in layered)}
    assert _top_level_parts() - placed == set()


def test_the_readme_map_names_every_part_of_the_package():
    section = (ROOT / "README.md").read_text().split("## Architecture", 1)[1]
    missing = {name for name in _top_level_parts()
               if name.split(".", 1)[1] + ("/" if (ROOT / name.replace(".", "/")).is_dir() else ".py")
               not in section and name != "mailer.__main__"}
    assert missing == set()
