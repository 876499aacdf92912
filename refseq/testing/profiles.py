"""Hypothesis profiles for refseq's tests and for users running its properties.

``dev`` (default: derandomized, 40 examples, so a test run gives the same verdict on every
machine), ``ci`` (selected by ``CI=true``: derandomized, 20), ``cudasim`` (tiny budgets for
simulated kernels, used through :func:`cuda_settings`), ``gpu`` and ``deep``
(``HYPOTHESIS_PROFILE=deep``: 1000 random examples per test, for hunting bugs).
:func:`load_default_profile` registers them and loads the one the environment asks for.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

_common = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", max_examples=40, derandomize=True, **_common)
settings.register_profile("ci", max_examples=20, derandomize=True, print_blob=True, **_common)
settings.register_profile("deep", max_examples=1000, **_common)
settings.register_profile("cudasim", max_examples=6, derandomize=True, **_common)
settings.register_profile("gpu", max_examples=40, **_common)


def load_default_profile() -> str:
    """Load ``$HYPOTHESIS_PROFILE``, else ``ci`` when ``$CI`` is set, else ``dev``."""
    name = os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev")
    settings.load_profile(name)
    return name


def cuda_settings():
    """Hypothesis settings for cuda-tier tests: tiny budgets under the simulator."""
    from refseq.cuda import simulating

    return settings.get_profile("cudasim" if simulating() else "gpu")
