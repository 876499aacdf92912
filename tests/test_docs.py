"""The examples in the docs run, so that none goes stale.

(a) Markdown: every ```` ```python ```` block of README.md and of the pages under docs/ runs,
    the blocks of one file in order in one namespace (a later block may use an earlier block's
    names). A sketch that is not meant to run (a signature, pseudo-code with ``...``) is fenced
    ```` ```python skip ```` (Sphinx/MyST and GitHub still highlight it as Python). Two
    conventions, as in doctest, tie the comments to what the code does:

    * ``print(...)  # text`` that prints one line: the line must equal ``text`` (a print of
      several lines may carry a descriptive comment);
    * a statement followed by a comment line ``# SomeError: ...`` must raise ``SomeError``.

(b) Docstrings: every ``>>>`` example in a module of ``refseq`` runs as a doctest
    (``ELLIPSIS`` and ``NORMALIZE_WHITESPACE`` on), in a fresh namespace: an example imports
    what it uses.

The docs site itself (docs/conf.py) is built with ``-W`` in CI (.ci/run), not here.
"""

from __future__ import annotations

import ast
import contextlib
import doctest
import importlib
import io
import pkgutil
import re
from pathlib import Path

import pytest

import refseq

ROOT = Path(__file__).resolve().parents[1]
_FENCE = re.compile(r"^(?P<indent> *)(?P<fence>`{3,}|~{3,})(?P<info>[^`\n]*)$")
_PRINT_COMMENT = re.compile(r"#\s?(?P<text>.*)$")
_RAISES_COMMENT = re.compile(r"^\s*#\s*(?P<name>[A-Za-z_][A-Za-z0-9_.]*(Error|Exception)):")


# --------------------------------------------------------------------------------------------
# (a) Markdown blocks


def python_blocks(path: Path) -> list[tuple[int, str]]:
    """``(first line number, source)`` of each runnable ```` ```python ```` block in ``path``."""
    blocks, lines = [], path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        fence, indent, info = m["fence"], len(m["indent"]), m["info"].split()
        j = i + 1
        while j < len(lines) and not lines[j].strip().startswith(fence):
            j += 1
        if info[:1] == ["python"] and "skip" not in info[1:]:
            body = [line[indent:] if line[:indent].isspace() else line for line in lines[i + 1 : j]]
            blocks.append((i + 2, "\n".join(body) + "\n"))
        i = j + 1
    return blocks


def _markdown_files() -> list[Path]:
    pages = [ROOT / "README.md"] + sorted((ROOT / "docs").rglob("*.md"))
    return [p for p in pages if "_build" not in p.parts and python_blocks(p)]


def _expected_exception(lines: list[str], end_lineno: int) -> str | None:
    """The ``SomeError`` of a ``# SomeError: ...`` comment line right after a statement."""
    if end_lineno < len(lines):
        m = _RAISES_COMMENT.match(lines[end_lineno])
        if m:
            return m["name"].rsplit(".", 1)[-1]
    return None


def run_block(source: str, namespace: dict, where: str) -> int:
    """Run ``source`` statement by statement, checking ``print`` comments and expected errors;
    returns the number of statements run."""
    tree, lines = ast.parse(source, filename=where), source.splitlines()
    for stmt in tree.body:
        code = compile(ast.Module([stmt], type_ignores=[]), f"{where}:{stmt.lineno}", "exec")
        expected_error = _expected_exception(lines, stmt.end_lineno)
        out = io.StringIO()
        try:
            with contextlib.redirect_stdout(out):
                exec(code, namespace)
        except Exception as exc:
            if type(exc).__name__ != expected_error:
                raise AssertionError(f"{where}, line {stmt.lineno}: {exc!r}") from exc
            continue
        if expected_error:
            raise AssertionError(f"{where}, line {stmt.lineno}: {expected_error} not raised")
        is_print = (
            isinstance(stmt, ast.Expr)
            and isinstance(stmt.value, ast.Call)
            and getattr(stmt.value.func, "id", None) == "print"
        )
        comment = _PRINT_COMMENT.search(lines[stmt.end_lineno - 1][stmt.end_col_offset :])
        if is_print and comment and len(out.getvalue().strip().splitlines()) == 1:
            assert out.getvalue().strip() == comment["text"].strip(), (
                f"{where}, line {stmt.lineno}: printed {out.getvalue().strip()!r}, "
                f"the comment says {comment['text'].strip()!r}"
            )
    return len(tree.body)


@pytest.mark.parametrize("page", _markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_markdown_examples_run(page):
    namespace: dict = {"__name__": "__doc_example__"}
    ran = [run_block(source, namespace, f"{page.relative_to(ROOT)}:{lineno}")
           for lineno, source in python_blocks(page)]
    assert ran and all(ran), f"{page}: a python block ran no statement"


def test_block_conventions():
    src = "x = 2\nprint(x + 1)     # 3\nint('a')\n# ValueError: invalid literal\n"
    run_block(src, {}, "self-test")
    run_block("print('a\\nb')  # two lines: not compared\n", {}, "self-test")
    with pytest.raises(AssertionError, match="printed '3'"):
        run_block("print(3)  # 4\n", {}, "self-test")
    with pytest.raises(AssertionError, match="not raised"):
        run_block("x = 1\n# ValueError: no\n", {}, "self-test")


# --------------------------------------------------------------------------------------------
# (b) Docstring examples

# Optional peers (torch) and the CLI entry point are not part of the documented API.
_NOT_WALKED = ("refseq.__main__", "refseq.peers")


def _doctests() -> list[doctest.DocTest]:
    finder, tests = doctest.DocTestFinder(exclude_empty=True), []
    names = [refseq.__name__] + [
        m.name
        for m in pkgutil.walk_packages(refseq.__path__, "refseq.")
        if not m.name.startswith(_NOT_WALKED)
    ]
    for name in names:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:  # a missing optional dependency, not a refseq bug
            if exc.name and exc.name.split(".")[0] != "refseq":
                continue
            raise
        tests += [t for t in finder.find(module, name, module=module) if t.examples]
    return sorted(tests, key=lambda t: t.name)


@pytest.mark.parametrize("test", _doctests(), ids=lambda t: t.name)
def test_docstring_examples(test):
    flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    test.globs = {}  # an example imports what it uses, as a reader pasting it would
    runner = doctest.DocTestRunner(optionflags=flags)
    report = io.StringIO()
    result = runner.run(test, out=report.write)
    assert result.failed == 0, report.getvalue()


def test_docstring_examples_found():
    # the walk must see the examples that exist (guards against a walk that imports nothing)
    assert any(t.name.endswith("jacobian") for t in _doctests())
