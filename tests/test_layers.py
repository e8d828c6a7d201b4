"""The import rules of the layers (``[tool.importlinter]`` in pyproject.toml) hold, and bite.

import-linter reads the contracts; the second test copies the package, breaks a rule in the
copy, and checks that the same contracts then fail, so a rule that could never fail is caught.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
LINT_IMPORTS = str(Path(sys.executable).with_name("lint-imports"))


def lint_imports(cwd: Path, python_path: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(python_path)}
    return subprocess.run([LINT_IMPORTS, "--no-cache"], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)


def test_the_package_keeps_every_import_rule() -> None:
    result = lint_imports(REPO, REPO / "src")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        ("settings.py", "import dlt", "The core imports no dlt, click or dagster"),
        ("extract.py", "import click", "The core imports no dlt, click or dagster"),
        ("rest_extract.py", "import dlt", "The core imports no dlt, click or dagster"),
        ("engine/plan.py", "import listrak_sync.pipeline.source", "The core imports no dlt"),
        ("simulator/data.py", "import listrak_sync.soap.client", "The simulator imports only"),
        ("simulator/rest/world.py", "import listrak_sync.soap.client", "The simulator imports only"),
        ("rest/client.py", "import listrak_sync.soap.client", "Each layer imports only the layers below it"),
        ("soap/client.py", "import listrak_sync.rest.client", "Each layer imports only the layers below it"),
        ("wire/retry.py", "import listrak_sync.soap.client", "Each layer imports only the layers below it"),
        ("rest/parse.py", "import dlt", "The core imports no dlt"),
        ("singer/sync.py", "import listrak_sync.pipeline.runner", "Each layer imports only the layers below it"),
    ],
)
def test_a_broken_rule_fails_the_check(tmp_path: Path, module: str, line: str, contract: str) -> None:
    shutil.copytree(REPO / "src" / "listrak_sync", tmp_path / "src" / "listrak_sync",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    broken = tmp_path / "src" / "listrak_sync" / module
    broken.write_text(broken.read_text() + f"\n{line}  # noqa\n")
    result = lint_imports(tmp_path, tmp_path / "src")
    assert result.returncode != 0, result.stdout
    assert f"{contract}" in result.stdout and "BROKEN" in result.stdout, result.stdout
