"""The code stays lint-clean, and the domain stays pure."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ALLOWED_DOMAIN_IMPORTS = {"bidhub", "scipy", "numpy"}


def test_ruff_is_clean():
    ruff = shutil.which("ruff")
    if ruff is None:
        pytest.fail("ruff is a test dependency: pip install -e '.[test]'")
    command = [ruff, "check", "--no-cache", str(ROOT)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_domain_imports_only_the_standard_library_and_the_solver():
    offenders = []
    for path in (ROOT / "bidhub" / "domain").rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top not in ALLOWED_DOMAIN_IMPORTS:
                    offenders.append(f"{path.name}: {name}")
                if top == "bidhub" and not name.startswith("bidhub.domain"):
                    offenders.append(f"{path.name}: {name}")
    assert offenders == []


def test_the_migrations_match_the_models(tmp_path):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from bidhub.db import make_engine, upgrade_database
    from bidhub.models import Base

    engine = make_engine(f"sqlite:///{tmp_path / 'check.sqlite3'}")
    upgrade_database(engine)
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    engine.dispose()
    assert differences == []
