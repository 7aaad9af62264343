"""Draw the module picture of docs/architecture.md from the source: the modules of npm_core and
npm_viewer and what each imports (at the top or inside a function), read with ast; npm_core's
subpackages (fit/, mesh/, models/, data/) drawn as one node each.

    python docs/architecture_graph.py      # writes docs/architecture.dot, and the PNG with Graphviz's `dot`

Also a check: it exits 1 when an import goes against the one-way flow (npm_core importing npm_viewer,
a panel importing the app, an import cycle).
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("npm_core", "npm_viewer")
CORE_GROUPS = ("npm_core.fit", "npm_core.mesh", "npm_core.models", "npm_core.data")  # drawn as one node each
COLORS = {"npm_viewer": "#f6e3c9", "npm_core": "#d6e6f5"}


def sources() -> list[Path]:
    """The packages' .py files: those git tracks (not scratch files), or every one outside a checkout."""
    try:
        out = subprocess.run(
            ["git", "ls-files", "--", *[f"{p}/*.py" for p in PACKAGES]],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        if out:
            return sorted(ROOT / f for f in out)
    except (OSError, subprocess.CalledProcessError):
        pass
    return sorted(f for p in PACKAGES for f in (ROOT / p).rglob("*.py"))


def modules() -> dict[str, Path]:
    """Dotted module name -> file, for every .py of the packages (a package's __init__ named as the package)."""
    out = {}
    for pkg in PACKAGES:
        for f in [f for f in sources() if f.relative_to(ROOT).parts[0] == pkg]:
            parts = list(f.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = f
    return out


def imports(name: str, path: Path, known: dict) -> set[str]:
    """The known modules that module `name` imports (absolute and relative, any depth in the file)."""
    is_pkg = path.name == "__init__.py"
    base = name.split(".") if is_pkg else name.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            head = base[: len(base) - node.level + 1] if node.level else []
            mod = ".".join(head + ([node.module] if node.module else []))
            targets = [mod] + [f"{mod}.{a.name}" for a in node.names]
        else:
            continue
        for t in targets:
            while t and t not in known:  # npm_core.layout.read_fit -> npm_core.layout
                t = t.rpartition(".")[0]
            if t and t != name:
                found.add(t)
    return found


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports(name, path, known) for name, path in known.items()}


def violations(g: dict[str, set[str]]) -> list[str]:
    """Imports against the one-way flow: npm_core importing npm_viewer, a panel importing the app,
    and import cycles (package __init__ re-exports left out)."""
    bad = [
        f"{a} imports {b}"
        for a, deps in g.items()
        for b in deps
        if (a.startswith("npm_core") and b.startswith("npm_viewer"))
        or (a.startswith("npm_viewer.panels.") and b == "npm_viewer.app")
    ]
    edges = {
        a: {b for b in deps if b not in g or not _is_package(b, g)} for a, deps in g.items() if not _is_package(a, g)
    }
    state: dict[str, int] = {}

    def visit(n: str, path: list) -> None:
        state[n] = 1
        for m in sorted(edges.get(n, ())):
            if state.get(m) == 1:
                bad.append("import cycle: " + " -> ".join(path[path.index(m) :] + [m]) if m in path else m)
            elif m not in state:
                visit(m, path + [m])
        state[n] = 2

    for n in sorted(edges):
        if n not in state:
            visit(n, [n])
    return sorted(set(bad))


def _is_package(name: str, g: dict) -> bool:
    return any(other.startswith(name + ".") for other in g)


def short(name: str) -> str:
    return name.split(".", 1)[1] if "." in name else name


def collapse(g: dict[str, set[str]]) -> dict[str, set[str]]:
    """npm_core's subpackages as one node each (their inner imports left out); a package __init__
    (it only re-exports) as its package."""

    def node(n: str) -> str:
        for c in CORE_GROUPS:
            if n == c or n.startswith(c + "."):
                return c
        return n

    out: dict[str, set[str]] = {}
    for a, deps in g.items():
        if a in PACKAGES or a == "npm_viewer.panels":
            continue
        out.setdefault(node(a), set()).update(node(b) for b in deps if b not in PACKAGES and b != "npm_viewer.panels")
    return {a: {b for b in deps if b != a} for a, deps in out.items()}


def dot(g: dict[str, set[str]]) -> str:
    g = collapse(g)
    lines = [
        "digraph modules {",
        "  rankdir=TB; newrank=true; nodesep=0.15; ranksep=0.45;",
        '  node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=11, height=0.3];',
        '  edge [color="#00000055", arrowsize=0.5];',
    ]
    for pkg in PACKAGES:
        lines.append(
            f'  subgraph cluster_{pkg} {{ label="{pkg}"; fontname="Helvetica-Bold"; fontsize=14; '
            f'style="rounded"; color="#888888";'
        )
        if pkg == "npm_viewer":
            members = [n for n in g if n.startswith("npm_viewer.panels.")]
            lines.append(
                '    subgraph cluster_panels { label="panels: one module per tab, talk to interface.Viewer"; '
                'style="rounded,dashed"; fontname="Helvetica"; fontsize=11;'
            )
            lines += [f'      "{n}" [label="{n.rsplit(".", 1)[1]}", fillcolor="{COLORS[pkg]}"];' for n in members]
            lines.append("    }")
        rest = [n for n in g if n.startswith(pkg + ".") and not n.startswith("npm_viewer.panels.")]
        lines += [
            f'    "{n}" [label="{short(n)}{"/" if n in CORE_GROUPS else ""}", fillcolor="{COLORS[pkg]}"];' for n in rest
        ]
        lines.append("  }")
    lines += [f'  "{a}" -> "{b}";' for a in sorted(g) for b in sorted(g[a])]
    lines.append("}")
    return "\n".join(lines) + "\n"


def main() -> int:
    g = graph()
    bad = violations(g)
    for v in bad:
        print(f"against the one-way flow: {v}", file=sys.stderr)
    out = ROOT / "docs" / "architecture.dot"
    out.write_text(dot(g))
    print(f"wrote {out.relative_to(ROOT)}")
    if shutil.which("dot"):
        png = out.with_suffix(".png")
        subprocess.run(["dot", "-Tpng", "-Gdpi=110", str(out), "-o", str(png)], check=True)
        print(f"wrote {png.relative_to(ROOT)}")
    else:
        print("Graphviz `dot` not found: the PNG was not redrawn", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
