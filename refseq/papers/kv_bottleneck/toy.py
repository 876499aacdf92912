"""The 2-D class-incremental toy of Figure 2 (Träuble et al., arXiv 2207.11240, Sec. 3.3).

Eight classes, four tasks of two classes each, isotropic Gaussians of standard deviation 0.035
in the unit square (the official notebook ``reproduce_experiments_figure_2.ipynb``):

====  =======  ====================  ====================
task  classes  mean of first class   mean of second class
====  =======  ====================  ====================
1     0, 4     (0.25, 0.25)          (0.75, 0.50)
2     1, 5     (0.75, 0.25)          (0.50, 0.75)
3     2, 6     (0.75, 0.75)          (0.25, 0.50)
4     3, 7     (0.25, 0.75)          (0.50, 0.25)
====  =======  ====================  ====================

Each example picks one of its task's two classes with probability 1/2. Keys are fitted on
``U([0, 1]^2)`` samples, which carry no label and no task structure.
"""

from __future__ import annotations

import numpy as np

from refseq import _checks

__all__ = ["SIGMA", "TASKS", "grid", "sample_key_init", "sample_task", "sample_tasks"]

SIGMA = 0.035
TASKS = (
    ((0, 4), ((0.25, 0.25), (0.75, 0.50))),
    ((1, 5), ((0.75, 0.25), (0.50, 0.75))),
    ((2, 6), ((0.75, 0.75), (0.25, 0.50))),
    ((3, 7), ((0.25, 0.75), (0.50, 0.25))),
)


def sample_task(task: int, n: int, rng=None, dtype=np.float64):
    """``n`` examples of task ``task`` (0-based): ``(x (n, 2), y (n,) int64)``."""
    task = _checks.check_number(task, "task", integer=True, low=0, high=len(TASKS) - 1)
    n = _checks.check_number(n, "n", integer=True, low=1)
    r = _checks.check_rng(rng)
    classes, means = TASKS[task]
    pick = r.integers(0, 2, n)  # (n,) which of the two classes
    x = np.asarray(means)[pick] + SIGMA * r.standard_normal((n, 2))  # (n, 2)
    return x.astype(_checks.check_float_dtype(dtype, "dtype")), np.asarray(classes)[pick]


def sample_tasks(n: int, rng=None, dtype=np.float64) -> list:
    """``[sample_task(t, n, rng) for t in 0..3]``, drawn in task order from one generator."""
    r = _checks.check_rng(rng)
    return [sample_task(t, n, r, dtype) for t in range(len(TASKS))]


def sample_key_init(n: int, rng=None, dtype=np.float64) -> np.ndarray:
    """Key-initialisation inputs: ``n`` points of ``U([0, 1]^2)``, shape ``(n, 2)``."""
    n = _checks.check_number(n, "n", integer=True, low=1)
    return _checks.check_rng(rng).random((n, 2)).astype(_checks.check_float_dtype(dtype, "dtype"))


def grid(points: int = 100) -> tuple:
    """A ``points x points`` grid of the unit square: ``(xs (points,), xy (points^2, 2))`` with
    ``xy[i * points + j] = (xs[j], xs[i])`` (rows are the second coordinate)."""
    points = _checks.check_number(points, "points", integer=True, low=2)
    xs = np.linspace(0.0, 1.0, points)
    gx, gy = np.meshgrid(xs, xs, indexing="xy")  # (points, points)
    return xs, np.stack([gx.ravel(), gy.ravel()], axis=-1)
