"""The README's set-up commands are the ones CI runs."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    setup = text.split("## Set up", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.*?)\n```", setup, flags=re.S)


def test_readme_has_exactly_two_setup_commands_installing_cpu_torch_first():
    cmds = _readme_commands()
    assert len(cmds) == 2, cmds
    for cmd in cmds:
        assert "\n" not in cmd.strip()
        assert cmd.index("pip install torch==2.13.0") < cmd.index('pip install -e ".[all]"')
    assert cmds[0].endswith("climviz demo")
    assert "pytest" in cmds[1]


def test_ci_runs_the_readme_test_command_verbatim():
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    test_cmd = _readme_commands()[1]
    assert test_cmd in ci


def test_torch_range_admits_the_cpu_wheel_but_nothing_newer():
    text = (ROOT / "pyproject.toml").read_text()
    spec = re.search(r'"torch([^"]*)"', text).group(1)
    assert ">=2.2" in spec and "<2.14" in spec
