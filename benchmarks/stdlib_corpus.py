"""Build a corpus anyone may ship and rebuild: the English prose of the Python standard library's docstrings.

    python benchmarks/stdlib_corpus.py --out stdlib      # stdlib/train.txt, stdlib/valid.txt, stdlib/test.txt

Used by docs/benchmarks.md to measure the `small` and `big` presets on text that is not Penn Treebank (the
docstrings are under the PSF license, which allows copying them). One sentence per line; lines that are mostly
code, doctest prompts or tables are left out. Every 10th sentence goes to valid, the next to test, so the
three files share topics but no sentence. The same Python version gives the same files.
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
import sysconfig
from pathlib import Path

SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")
CODE = re.compile(r"[=#{}<>\\\[\]`_|@$%^~]|\(\)|\w\(|\.\w+\(|^[a-z_]+\.")
WORDS = re.compile(r"[A-Za-z][A-Za-z'-]*")


def docstrings(root: Path):
    for path in sorted(root.rglob("*.py")):
        if any(part in {"test", "tests", "idle_test", "site-packages", "lib2to3"} for part in path.parts):
            continue
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                text = ast.get_docstring(node)
                if text:
                    yield text


def sentences(text: str):
    for paragraph in re.split(r"\n\s*\n", text):
        if ">>>" in paragraph or "::" in paragraph or paragraph.lstrip().startswith(("-", "*", "|", "+")):
            continue
        flat = " ".join(paragraph.split())
        for sentence in SENTENCE_END.split(flat):
            words = WORDS.findall(sentence)
            # Prose: a sentence of at least 4 words, no code characters, words most of the characters.
            if (len(words) >= 4 and sentence.endswith((".", "!", "?")) and not CODE.search(sentence)
                    and sum(map(len, words)) >= 0.8 * len(sentence.replace(" ", ""))):
                yield sentence


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    seen, lines = set(), []
    for text in docstrings(Path(sysconfig.get_paths()["stdlib"])):
        for sentence in sentences(text):
            if sentence not in seen:
                seen.add(sentence)
                lines.append(sentence)
    args.out.mkdir(parents=True, exist_ok=True)
    splits = {"train": [], "valid": [], "test": []}
    for number, line in enumerate(lines):
        splits["valid" if number % 10 == 8 else "test" if number % 10 == 9 else "train"].append(line)
    for name, part in splits.items():
        (args.out / f"{name}.txt").write_text("\n".join(part) + "\n", encoding="utf-8")
        print(f"{args.out / name}.txt: {len(part):,} lines, {sum(len(l.split()) for l in part):,} words")
    print(f"Python {sys.version.split()[0]} standard library")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
