"""The `npm-viewer` entry point: checks that the GUI packages of the `viewer` extra are installed,
then starts the app; without them one line says what to install (npm_core installs without them).

Must not: import polyscope, imgui-bundle or the app before the check.
"""

from __future__ import annotations

import importlib.util
import sys

REQUIRED = {"polyscope": "polyscope", "imgui_bundle": "imgui-bundle"}  # module -> package on PyPI


def missing_packages() -> list[str]:
    """The viewer's GUI packages that are not installed (PyPI names)."""
    return [pkg for mod, pkg in REQUIRED.items() if importlib.util.find_spec(mod) is None]


def main(argv=None) -> int:
    missing = missing_packages()
    if missing:
        print(
            f"npm-viewer: error: the viewer needs {', '.join(missing)}, not installed here; "
            f'install them with: pip install "npm-explorer[viewer]" (or pip install -e ".[viewer]" in a clone)',
            file=sys.stderr,
        )
        return 2
    from .app import main as app_main

    return app_main(argv)


if __name__ == "__main__":
    sys.exit(main())
