"""The README's commands are promises: every `npms` example parses with the real CLI, and the
README's test command is the one .ci/run runs."""

import re
import shlex
from pathlib import Path

import pytest

from npm_core.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _bash_blocks(text: str) -> list[str]:
    return re.findall(r"```bash\n(.*?)```", text, re.S)


def _npms_examples() -> list[str]:
    lines = [l for b in _bash_blocks(README) for l in b.splitlines() if l.startswith("npms ")]
    # optional parts in brackets are used as written; "a|b" alternatives take the first
    out = []
    for line in lines:
        line = line.split("  #")[0].strip()
        line = re.sub(r"\[([^\]]*)\]", lambda m: m.group(1).split("|")[0], line)
        out.append(line)
    return out


def test_readme_has_cli_examples():
    assert len(_npms_examples()) >= 8


@pytest.mark.parametrize("line", _npms_examples())
def test_readme_cli_example_parses(line):
    args = build_parser().parse_args(shlex.split(line)[1:])
    assert callable(args.fn)


def _steps(line: str) -> list[str]:
    """'a && b' -> ['a', 'b'], with `python3 -m pip install -q` read as `pip install`, python3 as python."""
    out = []
    for step in line.split("&&"):
        step = re.sub(r"^python3? -m pip install( -q)?", "pip install", step.strip())
        out.append(re.sub(r"^python3 ", "python ", step))
    return out


def test_readme_test_command_is_what_ci_runs():
    setup = _bash_blocks(README)[0].splitlines()
    test_line = setup[setup.index("# test: install with the test extra and run the suite (what .ci/run does)") + 1]
    ci_lines = [l for l in (ROOT / ".ci" / "run").read_text().splitlines() if l.startswith("python3 -m")]
    ci_steps = [s for l in ci_lines for s in _steps(l)]
    # the README's steps, in order, up to the test run; after it CI only checks style (ruff)
    n = len(_steps(test_line))
    assert _steps(test_line) == ci_steps[:n]
    assert all(step.startswith("python -m ruff ") for step in ci_steps[n:])
