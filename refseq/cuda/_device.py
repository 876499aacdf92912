"""The one place that imports ``numba.cuda`` (see refseq/cuda/__init__.py)."""

from numba import cuda  # noqa: F401

__all__ = ["cuda"]
