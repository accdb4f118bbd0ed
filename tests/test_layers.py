"""The package's shape: every import runs down the layers, and each command line runs clean."""
import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "cvae_tutorial"
# Lower numbers are lower layers; a module may import only from lower layers or from its own
# subpackage (data.cache from data.images). The top __init__ gathers the public API.
LAYERS = {"config": 0, "files": 0, "signals": 0, "claims": 0, "parameters": 1,
          "version": 0,
          "data": 1, "nets": 1, "flows": 1, "losses": 1,
          "cvae": 2, "checkpoints": 3,
          # editing's model operations sit below evaluation, which measures the edits
          "editing": 3,
          "training": 4, "evaluation": 4,
          "study": 5, "exercises": 5, "benchmarks": 5, "plotting": 5,
          # the reading of what study writes, then the chapters' demonstrations (chapter 4's
          # table lists the study's rungs; chapter 6 puts the ladder's reading into words)
          "ladder": 6, "demos": 7}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path):
    """The cvae_tutorial modules that ``path`` imports, as absolute dotted names."""
    package = module_name(path).split(".") if path.name == "__init__.py" else \
        module_name(path).split(".")[:-1]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            target = ".".join(base + ([node.module] if node.module else []))
            if node.level or target.startswith("cvae_tutorial"):
                names = [target] if node.module else [f"{target}.{a.name}" for a in node.names]
                yield from names
        elif isinstance(node, ast.Import):
            yield from (a.name for a in node.names if a.name.startswith("cvae_tutorial"))


def layer(module: str) -> tuple:
    part = module.split(".")[1]
    return part, LAYERS[part]


MODULES = sorted(p for p in PACKAGE.rglob("*.py") if p != PACKAGE / "__init__.py")


def test_every_module_has_a_layer():
    assert {module_name(p).split(".")[1] for p in MODULES} == set(LAYERS)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: module_name(p))
def test_imports_run_down_the_layers(path):
    own, own_layer = layer(module_name(path))
    for target in imported_modules(path):
        if target == "cvae_tutorial.version" or target.startswith("cvae_tutorial.version."):
            continue
        part, target_layer = layer(target)
        assert part == own or target_layer < own_layer, \
            f"{module_name(path)} (layer {own_layer}) imports {target} (layer {target_layer})"


@pytest.mark.parametrize("command", [["cvae_tutorial.training", "--help"],
                                     ["cvae_tutorial.benchmarks", "fid", "--help"]])
def test_command_lines_run_without_runpy_warnings(command):
    result = subprocess.run([sys.executable, "-W", "error::RuntimeWarning", "-m", *command],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "usage: python -m " + command[0] in result.stdout
