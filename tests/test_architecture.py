"""The one-way import flow of docs/architecture.md, checked on the source (docs/architecture_graph.py)."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("architecture_graph", ROOT / "docs" / "architecture_graph.py")
arch = importlib.util.module_from_spec(spec)
spec.loader.exec_module(arch)


def test_imports_flow_one_way():
    g = arch.graph()
    assert "npm_viewer.scene" in g and "npm_core.layout" in g["npm_viewer.loading"]  # the graph is read
    assert arch.violations(g) == []


def test_violations_are_found():
    g = {
        "npm_core.a": {"npm_viewer.b"},
        "npm_viewer.b": set(),
        "npm_viewer.app": {"npm_viewer.panels.x"},
        "npm_viewer.panels.x": {"npm_viewer.app"},
    }
    assert arch.violations(g) == [
        "import cycle: npm_viewer.app -> npm_viewer.panels.x -> npm_viewer.app",
        "npm_core.a imports npm_viewer.b",
        "npm_viewer.panels.x imports npm_viewer.app",
    ]
