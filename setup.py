"""Build step: ship ``templates/`` and ``examples/`` inside the ``mailer`` package.

The repository keeps ``templates/`` and ``examples/`` at its top, beside ``mailer/``, where the
editors look for them. A wheel carries only packages, so building one copies both folders to
``mailer/templates`` and ``mailer/examples``; ``mailer.config`` looks there first and falls back to
the checkout (an editable install). Everything else is declared in ``pyproject.toml``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
SHIPPED_FOLDERS = ("templates", "examples")


class BuildPyWithTemplates(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return  # an editable install reads them from the checkout itself
        for name in SHIPPED_FOLDERS:
            source = ROOT / name
            if not source.is_dir():  # an sdist built without MANIFEST.in's graft lines
                raise SystemExit(f"cannot build mailer: {source} is missing")
            target = Path(self.build_lib) / "mailer" / name
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


setup(cmdclass={"build_py": BuildPyWithTemplates})
