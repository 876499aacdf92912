"""refseq: readable NumPy references, compiled twins and property tests for sequence models.

The reference (this package outside ``jit/`` and ``cuda/``) imports only NumPy and SciPy. The
compiled tiers ``refseq.jit`` (Numba CPU) and ``refseq.cuda`` (numba.cuda) keep the reference's
function names and contracts; pick one with ``backend="jit" | "cuda"``.
"""

__version__ = "0.1.0"
