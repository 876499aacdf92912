"""Numba CPU tier: ``@njit(cache=True)`` kernels with the reference's names and contracts."""
