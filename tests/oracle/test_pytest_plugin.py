"""The pytest plugin, run from a separate directory against a separate package."""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
import textwrap

import pytest

PACKAGE = '''
import numpy as np

def good(a, b, h0):
    h, out = h0, []
    for t in range(a.shape[1]):
        h = a[:, t] * h + b[:, t]
        out.append(h)
    return np.stack(out, axis=1)

def wrong(a, b, h0):  # forgets the initial state
    return good(a, b, np.zeros_like(h0))
'''


@pytest.fixture
def user_dir(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text(textwrap.dedent(PACKAGE))
    return tmp_path


def _pytest(cwd, *args):
    env = {**os.environ, "PYTHONPATH": str(cwd)}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_plugin_passes_a_correct_scan(user_dir):
    run = _pytest(user_dir, "-p", "refseq.oracle.pytest_plugin",
                  "--refseq-check", "linear_scan=pkg:good", "--refseq-max-examples", "1")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "10 passed" in run.stdout


def test_plugin_fails_a_wrong_scan_with_the_reproducer(user_dir):
    run = _pytest(user_dir, "-p", "refseq.oracle.pytest_plugin",
                  "--refseq-check", "linear_scan=pkg:wrong", "--refseq-max-examples", "1")
    assert run.returncode == 1, run.stdout + run.stderr
    out = run.stdout
    assert "FAILED" in out and "refseq-check::linear_scan:pkg:wrong[random, float32" in out
    assert "worst entry" in out and "from refseq.oracle import replay" in out


def test_plugin_bad_spec_is_a_usage_error(user_dir):
    run = _pytest(user_dir, "-p", "refseq.oracle.pytest_plugin", "--refseq-check", "linear_scan")
    assert run.returncode == 4 and "CONTRACT=module:callable" in run.stderr


def test_make_test_in_a_users_test_file(user_dir):
    (user_dir / "test_kernels.py").write_text(textwrap.dedent('''
        import refseq.oracle
        from pkg import good, wrong
        test_good = refseq.oracle.make_test(good, "linear_scan", max_examples=1)
        test_wrong = refseq.oracle.make_test(wrong, "linear_scan", max_examples=1)
    '''))
    run = _pytest(user_dir, "test_kernels.py")
    assert run.returncode == 1
    assert "1 failed, 1 passed" in run.stdout and "test_wrong" in run.stdout


def _entry_point_installed():
    eps = importlib.metadata.entry_points(group="pytest11")
    return any(ep.value == "refseq.oracle.pytest_plugin" for ep in eps)


@pytest.mark.skipif(not _entry_point_installed(),
                    reason="the pytest11 entry point needs `pip install -e .`")
def test_entry_point_loads_the_plugin_without_p(user_dir):
    run = _pytest(user_dir, "--refseq-check", "linear_scan=pkg:wrong", "--refseq-max-examples",
                  "1")
    assert run.returncode == 1 and "refseq-check::linear_scan" in run.stdout
