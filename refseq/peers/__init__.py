"""Independent implementations in peer libraries, for cross-checks and benchmarks.

Each module imports its peer (torch, faiss, ...) at import time: install the ``peers`` extra, and
import these modules only behind ``pytest.importorskip`` or an availability check. They are
written separately from the NumPy reference on purpose, so that agreement means something.
"""
