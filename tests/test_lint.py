"""The code reads one way: ruff (100 columns, pyflakes, bugbear, pyupgrade) over the package,
the tests and the chapters' cells, with the settings in pyproject.toml."""
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_finds_nothing():
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache",
                             "--output-format", "concise", "."], cwd=ROOT, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


def test_the_rules_are_the_projects(tmp_path):
    """The 100-column rule is on, and a line past it is found (ruff sees what it claims to)."""
    settings = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["ruff"]
    assert settings["line-length"] == 100 and "E" in settings["lint"]["select"]
    long_line = tmp_path / "long.py"
    long_line.write_text(f"x = {'1' * 97}\n")  # 101 columns
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "--config",
                             str(ROOT / "pyproject.toml"), str(long_line)], capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 1 and "E501" in result.stdout, result.stdout
