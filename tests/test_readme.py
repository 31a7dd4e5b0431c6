"""The README opens with exactly the two commands, CI runs the second, and every Python block of the README and
of the docs it links runs as written."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def first_code_block() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"^```[^\n]*\n(.*?)^```", text, re.S | re.M)
    assert block, "README.md has no code block"
    return block.group(1).strip().splitlines()


def test_readme_opens_with_two_commands_main_job_first():
    main_job, tests = first_code_block()
    assert "nextword train" in main_job and ".venv" in main_job
    assert "pytest" in tests and ".venv" in tests


def test_ci_runs_the_readme_test_command():
    script = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "README.md" in script and "sed -n 2p" in script
    out = subprocess.run(["bash", "-c", "awk '/^```/{fence++; next} fence==1' README.md | sed -n 2p"],
                         cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == first_code_block()[1]


#: The pages whose Python blocks run, in this order (a later page uses what an earlier one made).
SNIPPET_PAGES = ["README.md", "docs/training.md", "docs/export.md", "docs/device.md", "docs/profile.md",
                 "docs/evaluation.md"]


def python_snippets() -> list[str]:
    blocks = []
    for page in SNIPPET_PAGES:
        text = (ROOT / page).read_text(encoding="utf-8")
        blocks += re.findall(r"^```python\n(.*?)^```", text, re.S | re.M)
    return blocks


def test_every_docs_page_is_linked_from_the_readme():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    pages = sorted(p.name for p in (ROOT / "docs").glob("*.md"))
    assert [p for p in pages if f"docs/{p}" not in readme] == []
    assert len(readme.splitlines()) <= 250


def test_every_python_snippet_runs_in_order_as_written(tmp_path):
    """The README's snippets, one after another in one interpreter, in a folder holding the user's notes.txt."""
    from conftest import user_env, write_tiny_corpus

    snippets = python_snippets()
    assert len(snippets) >= 3
    write_tiny_corpus(tmp_path / "notes.txt")
    program = "\n".join(f"# --- snippet {i}\n{code}" for i, code in enumerate(snippets, start=1))
    (tmp_path / "readme_snippets.py").write_text(program, encoding="utf-8")
    result = subprocess.run([sys.executable, "readme_snippets.py"], cwd=tmp_path, capture_output=True, text=True,
                            timeout=600, env=user_env())
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "models" / "mine" / "model.int8.tflite").exists()


def test_bring_your_own_keras_model_commands_run_as_written(tmp_path):
    """docs/export.md's "Bring your own Keras model" section: its Python (the tutorial), then its two commands."""
    import shlex

    from conftest import run_cli, user_env

    text = (ROOT / "docs" / "export.md").read_text(encoding="utf-8")
    section = text[text.index("## Bring your own Keras model"):]
    python = re.search(r"^```python\n(.*?)^```\n", section, re.S | re.M)
    code = python.group(1)
    commands = re.search(r"^```\n(.*?)^```", section[python.end():], re.S | re.M).group(1).strip().splitlines()
    (tmp_path / "tutorial.py").write_text(code, encoding="utf-8")
    made = subprocess.run([sys.executable, "tutorial.py"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=600, env=user_env())
    assert made.returncode == 0, made.stderr[-3000:]
    assert [c.split()[:2] for c in commands] == [["nextword", "export"], ["nextword", "predict"]]
    for command in commands:
        result = run_cli(*shlex.split(command)[1:], cwd=tmp_path)
        assert result.returncode == 0, (command, result.stderr[-2000:])
    assert "your" in result.stdout.split()[0]  # the tutorial's answer to "hello how is"
