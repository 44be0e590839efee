"""A wheel built from the working tree installs into a new venv, and `bidhub init` and
`bidhub demo --no-serve` work from it, far from the source tree."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run(command: list[str | Path], cwd: Path, env: dict[str, str] | None = None,
        timeout: int = 300) -> subprocess.CompletedProcess:
    result = subprocess.run([str(part) for part in command], cwd=cwd, env=env,  # noqa: S603
                            timeout=timeout, capture_output=True, text=True, check=False)
    assert result.returncode == 0, (command, result.stdout[-3000:], result.stderr[-3000:])
    return result


def copy_source_tree(target: Path) -> Path:
    """What a fresh clone would hold, with the working tree's changes: tracked and new
    files that git does not ignore (no .venv, no build leftovers, no compiled catalogues)."""
    listed = run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                 cwd=ROOT).stdout
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if not source.is_symlink() and not source.is_file():
            continue  # deleted in the working tree
        destination = target / name
        destination.parent.mkdir(parents=True, exist_ok=True)
        if source.is_symlink():
            destination.symlink_to(os.readlink(source))
        else:
            shutil.copy2(source, destination)
    return target


def venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def clean_environment(tmp_path: Path) -> dict[str, str]:
    """This process's environment without anything pointing at the source tree or its data."""
    env = {name: value for name, value in os.environ.items()
           if not name.startswith(("BIDHUB_", "PYTHON", "VIRTUAL_ENV", "FLASK_"))}
    env.update(BIDHUB_DATABASE_URL=f"sqlite:///{tmp_path / 'bidhub.sqlite3'}",
               BIDHUB_LEDGER_CHECKPOINT_FILE=str(tmp_path / "ledger-checkpoints.jsonl"),
               BIDHUB_LEDGER_KEY="packaging-test-key")
    return env


@pytest.mark.slow
def test_a_wheel_installs_into_a_new_venv_and_init_and_demo_work_from_it(tmp_path):
    source = copy_source_tree(tmp_path / "clone")
    wheels = tmp_path / "wheels"
    # No build isolation: nothing is downloaded (setuptools and wheel come with '.[test]').
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
         "-w", wheels, "."], cwd=source)
    (wheel,) = wheels.glob("bidhub-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "bidhub/rules/default.toml" in names
    assert "bidhub/data/common_passwords.txt" in names
    assert any(name.startswith("bidhub/migrations/versions/") for name in names)
    assert any(name.startswith("bidhub/templates/") for name in names)
    # The catalogue is compiled by the build (setup.py), not committed.
    assert "bidhub/translations/zh_Hans_CN/LC_MESSAGES/messages.mo" in names

    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", venv], cwd=tmp_path)
    # Installed before the venv can see this one's packages, so pip finds no bidhub to replace;
    # pip runs itself under the new venv's interpreter, which gets the scripts right.
    run([sys.executable, "-m", "pip", "--python", venv_python(venv), "install", "--no-deps",
         "--no-index", wheel], cwd=tmp_path)
    # The dependencies come from this venv: a plain path line, so this venv's editable
    # bidhub (installed by a .pth hook) stays out of the new one.
    site_packages = Path(run([venv_python(venv), "-c",
                              "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             cwd=tmp_path).stdout.strip())
    (site_packages / "_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")

    work = tmp_path / "elsewhere"
    work.mkdir()
    env = clean_environment(tmp_path)
    located = run([venv_python(venv), "-c", "import bidhub; print(bidhub.__file__)"],
                  cwd=work, env=env).stdout.strip()
    assert Path(located).is_relative_to(site_packages), located

    # Templates, static files and the catalogue come from the wheel too.
    page = run([venv_python(venv), "-c",
                "from bidhub import create_app; response = create_app().test_client().get("
                "'/login', headers={'Accept-Language': 'zh-CN'}); "
                "print(response.status_code, response.get_data(as_text=True))"],
               cwd=work, env=env).stdout
    assert page.startswith("200 ") and 'lang="zh-CN"' in page and "登录 bidhub" in page

    bidhub = venv / "bin" / "bidhub"
    assert "Database ready." in run([bidhub, "init"], cwd=work, env=env).stdout
    demo = run([bidhub, "demo", "--no-serve"], cwd=work, env=env, timeout=600)
    assert "Demo logins" in demo.stdout
    with sqlite3.connect(tmp_path / "bidhub.sqlite3") as database:
        users = database.execute("SELECT count(*) FROM users").fetchone()[0]
        adopted = database.execute(
            "SELECT count(*) FROM rule_set_versions WHERE is_active").fetchone()[0]
    assert users > 50 and adopted == 1
