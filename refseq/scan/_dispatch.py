"""Hand a validated call to the compiled twin ``refseq.<tier>.scan:<name>``."""

from __future__ import annotations

from refseq.tiers import implementation


def dispatch(name, backend, *args, **kwargs):
    return implementation("scan", name, backend)(*args, check_finite=False, **kwargs)
