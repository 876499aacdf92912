"""Hand a validated call to the compiled twin ``refseq.<tier>.scan:<name>``.

The public functions check shapes and dtypes only and pass ``check_finite`` on: the twins check
finiteness inside (or right after) their pass, :func:`refseq.scan.checks.recheck_linear_scan`.
"""

from __future__ import annotations

from refseq.tiers import implementation


def dispatch(name, backend, *args, **kwargs):
    return implementation("scan", name, backend)(*args, **kwargs)
