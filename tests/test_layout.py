"""The house keeps its shape: data flows one way (corpus -> train -> export -> runtime), read from the
source alone (AST, nothing imported or executed), and no module grows past what a reader can hold.

    device core   runtime/*.py, runtime/modelfile/, runtime/profile/: what `pip install nextword` is for
    measuring     runtime/measure/: evaluation, Kneser-Ney, bench
    command line  runtime/cli/ (and each stage's own cli.py): the only place that may reach every stage
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
#: Folder -> the package its modules import as (pyproject.toml's package-dir).
PACKAGES = {"runtime": "nextword", "train": "nextword.train", "export": "nextword.export"}
ML_FRAMEWORKS = ("tensorflow", "keras", "tf_keras", "tf2onnx", "onnx")  # onnxruntime is an engine, not these
MAX_LINES = 500


def modules() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the three stages."""
    found = {}
    for folder, package in PACKAGES.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = path.relative_to(ROOT / folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join((package, *parts))] = path
    return found


def imported(path: Path) -> set[str]:
    """Every module ``path`` imports, at the top or inside a function (lazy imports count too)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)  # `from nextword import cli`
    return names


def within(name: str, *packages: str) -> bool:
    return any(name == p or name.startswith(p + ".") for p in packages)


def room(module: str) -> str:
    if within(module, "nextword.cli") or module in ("nextword.__main__", "nextword.train.cli", "nextword.export.cli"):
        return "command line"
    if within(module, "nextword.measure"):
        return "measuring"
    if within(module, "nextword.train"):
        return "train"
    if within(module, "nextword.export"):
        return "export"
    return "device core"


#: Room -> what it must never import.
FORBIDDEN = {
    "device core": ("nextword.cli", "nextword.measure", "nextword.train", "nextword.export", *ML_FRAMEWORKS),
    "measuring": ("nextword.cli", "nextword.train", "nextword.export", *ML_FRAMEWORKS),
    "train": ("nextword.export", "nextword.cli", "nextword.measure"),
    "export": ("nextword.cli", "nextword.measure"),
    "command line": (),
}


def violations() -> list[str]:
    found = []
    for module, path in modules().items():
        forbidden = FORBIDDEN[room(module)]
        for name in sorted(imported(path)):
            if within(name, *forbidden) and not within(name, "nextword.export.cli", "nextword.train.cli") \
                    or (room(module) != "command line" and within(name, "nextword.train.cli", "nextword.export.cli")):
                found.append(f"{path.relative_to(ROOT)} ({room(module)}) imports {name}")
    return found


def test_data_flows_one_way():
    assert violations() == []


def test_the_rule_catches_a_device_module_that_imports_the_command_line(tmp_path, monkeypatch):
    """The check itself can fail: a device-core module that reaches for a command, TensorFlow or training."""
    fake = tmp_path / "runtime"
    fake.mkdir()
    (fake / "predictor.py").write_text("import tensorflow\nfrom nextword.cli import keyboard\n"
                                       "def f():\n    from nextword.train.loading import load_run\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    monkeypatch.setitem(PACKAGES, "runtime", "nextword")
    found = violations()
    assert any("imports tensorflow" in line for line in found)
    assert any("imports nextword.cli" in line for line in found)
    assert any("imports nextword.train.loading" in line for line in found)


@pytest.mark.parametrize("room_name", ["device core", "measuring", "command line", "train", "export"])
def test_every_room_has_modules(room_name):
    assert any(room(module) == room_name for module in modules())


def test_no_module_is_too_long_to_read():
    long = {str(path.relative_to(ROOT)): n for path in modules().values()
            if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert long == {}


def test_the_device_core_is_the_top_of_the_runtime():
    """A listing shows the architecture: the core's modules at the top, one sub-package per other job."""
    subpackages = {p.name for p in (ROOT / "runtime").iterdir() if (p / "__init__.py").is_file()}
    assert subpackages == {"cli", "measure", "modelfile", "profile"}
    core = {p.stem for p in (ROOT / "runtime").glob("*.py")}
    assert {"predictor", "session", "tokenizer", "engines"} <= core
    assert not any(name.endswith("_cli") for name in core)


def test_paths_into_the_checkout_survive_the_move():
    """Modules that find files beside the package (the web client) still find them from their new room."""
    from nextword.cli.web import CLIENT_DIR

    assert (CLIENT_DIR / "index.html").is_file(), CLIENT_DIR
