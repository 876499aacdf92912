"""The small-scale result of docs/speculative.md: tokens per target call of chain and tree drafts.

Target: an order-2 toy model ``p(x_t | x_{t-2}, x_{t-1}) = softmax(1.5 G[x_{t-2}, x_{t-1}])``
with ``V = 32`` and ``G`` standard normal (seed 0). Draft: the same logits plus ``N(0, 1)`` noise
(seed 1), draft temperature 1. Target temperature 1. For each configuration the engine runs
``steps`` verification steps (in episodes of ``episode`` steps from random two-token prompts)
and the table reports the mean number of tokens emitted per target call (``m + 1``) with its
standard error. Greedy runs of every drafter are checked against plain greedy decoding.
"""

from __future__ import annotations

import numpy as np

from refseq import _checks
from refseq.decoding.interfaces import log_softmax
from refseq.decoding.speculative.drafters import ChainDrafter, SampledTreeDrafter
from refseq.decoding.speculative.engine import plain_greedy, speculative_generate
from refseq.decoding.speculative.target import TabularTreeLM
from refseq.models.toy_lm import TabularLM

__all__ = ["CONFIGS", "run_small_result", "toy_models"]

# name -> (drafter kind, branching or chain length, mode)
CONFIGS = {
    "chain K=4 (iid)": ("chain", 4, "iid"),
    "tree (2,2,1) iid": ("tree", (2, 2, 1), "iid"),
    "tree (2,2,1) wor": ("tree", (2, 2, 1), "wor"),
    "tree (4,1,1) iid": ("tree", (4, 1, 1), "iid"),
    "tree (4,1,1) wor": ("tree", (4, 1, 1), "wor"),
}


def toy_models(V: int = 32, scale: float = 1.5, noise: float = 1.0):
    """``(target, draft)`` order-3 ``TabularLM`` s (tables ``(V*V, V)``) as described above."""
    V = _checks.check_number(V, "V", integer=True, low=1)
    scale = _checks.check_number(scale, "scale")
    noise = _checks.check_number(noise, "noise", low=0)
    G = np.random.default_rng(0).standard_normal((V * V, V))  # (V^2, V) rows = (x_{t-2}, x_{t-1})
    eps = np.random.default_rng(1).standard_normal((V * V, V))
    target = TabularLM(3, log_softmax(scale * G))
    draft = TabularLM(3, log_softmax(scale * G + noise * eps))
    return target, draft


def _drafter(draft, kind, shape, mode, temperature, rng):
    if kind == "chain":
        return ChainDrafter(draft, shape, temperature=temperature, rng=rng)
    return SampledTreeDrafter(draft, shape, mode=mode, temperature=temperature or 1.0, rng=rng)


def run_small_result(steps: int = 3000, episode: int = 100, seed: int = 0,
                     greedy_checks: int = 5, verbose: bool = True) -> dict:
    """Run every configuration of :data:`CONFIGS`; return ``{name: (mean, stderr)}``.

    Parameters
    ----------
    steps : int
        Verification steps per configuration (3000 in the documented result).
    episode : int
        Steps per generation (each from a fresh random prompt of two tokens).
    seed : int
        Seed of the prompts, the drafts' randomness and the verification uniforms.
    greedy_checks : int
        Number of prompts on which each drafter's greedy run (temperature 0) must equal
        :func:`plain_greedy` for 20 tokens; a mismatch raises ``AssertionError``.
    verbose : bool
        Print the table.
    """
    steps = _checks.check_number(steps, "steps", integer=True, low=1)
    episode = _checks.check_number(episode, "episode", integer=True, low=1)
    seed = _checks.check_number(seed, "seed", integer=True, low=0)
    greedy_checks = _checks.check_number(greedy_checks, "greedy_checks", integer=True, low=0)
    verbose = _checks.check_flag(verbose, "verbose")
    target_lm, draft = toy_models()
    target = TabularTreeLM(target_lm)
    V = target.vocab_size
    rng = np.random.default_rng(seed)
    table = {}
    for name, (kind, shape, mode) in CONFIGS.items():
        drafter = _drafter(draft, kind, shape, mode, 1.0, rng)
        emitted = []
        while len(emitted) < steps:
            prompt = rng.integers(0, V, 2)
            n = min(episode, steps - len(emitted))
            _, st = speculative_generate(target, drafter, prompt, 10 * n * (1 + 10),
                                         temperature=1.0, rng=rng, max_steps=n)
            emitted += [m + 1 for m in st.num_accepted]
        e = np.asarray(emitted, np.float64)
        table[name] = (float(e.mean()), float(e.std(ddof=1) / np.sqrt(e.size)))
        for _ in range(greedy_checks):
            prompt = rng.integers(0, V, 2)
            greedy = _drafter(draft, kind, shape, mode, 0.0, rng)
            out, _ = speculative_generate(target, greedy, prompt, 20)
            assert np.array_equal(out, plain_greedy(target, prompt, 20)), name
    if verbose:
        print(f"{'configuration':<20} {'drafts':>6} {'tokens / target call':>22}")
        for name, (kind, shape, _) in CONFIGS.items():
            n = shape if kind == "chain" else int(np.sum(np.cumprod(shape)))
            mean, se = table[name]
            print(f"{name:<20} {n:>6} {mean:>15.3f} +- {se:.3f}")
    return table


if __name__ == "__main__":  # pragma: no cover
    run_small_result()
