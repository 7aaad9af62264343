"""Packaging: npm_core installs and imports without the GUI packages; npm-viewer says what is missing."""

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BLOCK_GUI = """
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("polyscope", "imgui_bundle"):
            raise ModuleNotFoundError(f"No module named {name!r}")
sys.meta_path.insert(0, Block())
import importlib.util
_find_spec = importlib.util.find_spec
importlib.util.find_spec = lambda name, *a: None if name.split(".")[0] in ("polyscope", "imgui_bundle") else _find_spec(name, *a)
"""


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", BLOCK_GUI + code], capture_output=True, text=True, cwd=REPO)


def test_every_npm_core_module_imports_without_gui_packages():
    r = _run(
        "import pkgutil, importlib, npm_core\n"
        "names = [m.name for m in pkgutil.walk_packages(npm_core.__path__, 'npm_core.')]\n"
        "[importlib.import_module(n) for n in names]\n"
        "print(len(names), 'polyscope' in sys.modules)"
    )
    assert r.returncode == 0, r.stderr[-2000:]
    count, gui = r.stdout.split()
    assert int(count) > 20 and gui == "False"


def test_viewer_without_gui_packages_is_one_clear_line():
    r = _run("from npm_viewer.launch import main\nsys.exit(main(['--help']))")
    assert r.returncode == 2 and r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("npm-viewer: error: the viewer needs polyscope, imgui-bundle")
    assert 'pip install "npm-explorer[viewer]"' in lines[0]


def test_extras_keep_gui_and_benchmark_packages_out_of_the_core():
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    core = " ".join(project["dependencies"])
    assert not any(p in core for p in ("polyscope", "imgui", "scikit-image", "imageio"))
    extras = project["optional-dependencies"]
    assert extras["test"][0] == "npm-explorer[viewer,video,bench]"  # the suite runs the viewer tests too
    assert project["scripts"]["npm-viewer"] == "npm_viewer.launch:main"


def test_readme_run_command_installs_the_viewer_extra():
    readme = (REPO / "README.md").read_text()
    run = next(line for line in readme.splitlines() if "npm-viewer --checkpoint" in line and "pip install" in line)
    assert 'pip install -e ".[viewer]"' in run
