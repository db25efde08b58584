"""The Makefile on a machine whose python3 is too new for oso: it finds a supported interpreter, or says what to install."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PYENV = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
NEWER = sorted(PYENV.glob("versions/3.1[3-9]*/bin/python3"))


def make_python(path: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["make", "--no-print-directory", "-C", str(ROOT), "python"],
        capture_output=True, text=True, timeout=60, env={**os.environ, "PATH": path, **env},
    )


@pytest.mark.skipif(not NEWER or shutil.which("make") is None, reason="no CPython 3.13 or newer under pyenv here")
def test_a_python3_too_new_for_oso_is_passed_over(tmp_path):
    (tmp_path / "python3").symlink_to(NEWER[0])
    chosen = make_python(f"{tmp_path}:/usr/local/bin:/usr/bin:/bin", PYTHON=str(NEWER[0]))
    assert chosen.returncode == 0, chosen.stderr
    version = subprocess.run([chosen.stdout.strip(), "--version"], capture_output=True, text=True).stdout
    assert version.startswith(("Python 3.11", "Python 3.12")), (chosen.stdout, version)


@pytest.mark.skipif(not NEWER or shutil.which("make") is None, reason="no CPython 3.13 or newer under pyenv here")
def test_without_a_supported_python_make_says_what_to_install(tmp_path):
    (tmp_path / "python3").symlink_to(NEWER[0])
    for name in ("make", "sh", "ls", "sort", "cat", "sha256sum", "cut"):
        found = shutil.which(name)
        if found:
            (tmp_path / name).symlink_to(found)
    chosen = make_python(str(tmp_path), PYTHON=str(NEWER[0]), HOME=str(tmp_path), PYENV_ROOT=str(tmp_path))
    assert chosen.returncode != 0
    assert "no CPython 3.11 or 3.12 found" in chosen.stderr
    project = tmp_path / "project"  # a copy: `make install` must stop before touching anything
    project.mkdir()
    for name in ("Makefile", "pyproject.toml"):
        shutil.copy(ROOT / name, project / name)
    installed = subprocess.run(
        ["make", "--no-print-directory", "-C", str(project), "install"],
        capture_output=True, text=True, timeout=60,
        env={**os.environ, "PATH": str(tmp_path), "PYTHON": str(NEWER[0]), "HOME": str(tmp_path), "PYENV_ROOT": str(tmp_path)},
    )
    assert installed.returncode != 0 and not (project / ".venv").exists()
    assert "install python3.12 (apt install python3.12-venv, pyenv install 3.12, or uv python install 3.12)" in installed.stderr
