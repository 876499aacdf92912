"""Argument checks of :func:`refseq.decoding.diverse_beam.diverse_beam_search` and the
conventions' presets (kept apart so the search module reads as the algorithm)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from refseq import _checks
from refseq.decoding.diversity import DIVERSITY
from refseq.decoding.nbest import LENGTH_NORMS

CONVENTIONS = ("neutral", "hf", "fairseq", "lua")
_PRESETS = {  # schedule, penalty_source, accumulate_penalty, final_rank
    "neutral": ("lockstep", "kept", True, "augmented"),
    "hf": ("lockstep", "kept", True, "augmented"),
    "fairseq": ("lockstep", "candidates", True, "augmented"),
    "lua": ("staggered", "kept", True, "augmented"),
}


def _check_args(model, B, G, lam, diversity, T, eos_ids, pad_id, min_new, suppress, alpha, norm,
                early, schedule, source, accumulate, final_rank, n_ret, proc, conv, dt):
    _checks.check_methods(model, "model", ("start", "step", "reorder"), "a StepLM")
    V = _checks.check_number(getattr(model, "vocab_size", None), "model.vocab_size",
                             integer=True, low=1)
    B = _checks.check_number(B, "num_beams", integer=True, low=1)
    G = _checks.check_number(G, "num_groups", integer=True, low=1, high=B)
    if B % G:
        raise ValueError(f"num_beams must be a multiple of num_groups, got {B} and {G}")
    if np.ndim(lam) == 0:
        lam = np.full(G, _checks.check_number(lam, "diversity_strength", low=0))
    else:
        lam = _checks.float_array(lam, "diversity_strength").astype(np.float64)
        _checks.check_shape(lam, (G,), "diversity_strength", "(num_groups,)")
        if not np.all(np.isfinite(lam) & (lam >= 0)):
            raise ValueError(f"diversity_strength must be finite and >= 0, got {lam}")
    if isinstance(diversity, str):
        fn = DIVERSITY[_checks.check_choice(diversity, "diversity", tuple(DIVERSITY))]
    elif callable(diversity):
        fn = diversity
    else:
        raise TypeError(f"diversity must be a name in {tuple(DIVERSITY)} or a callable, got "
                        f"{type(diversity).__name__}")
    T = _checks.check_number(T, "max_new_tokens", integer=True, low=1)
    ids = {}
    for name, x in (("eos_ids", eos_ids), ("suppress_ids", suppress)):
        x = (x,) if isinstance(x, (int, np.integer)) and not isinstance(x, bool) else x
        if not isinstance(x, (Sequence, np.ndarray)) or isinstance(x, str):
            raise TypeError(f"{name} must be a sequence of token ids, got {type(x).__name__}")
        ids[name] = tuple(_checks.check_number(e, name, integer=True, low=0, high=V - 1)
                          for e in x)
    pad_id = _checks.check_number(pad_id, "pad_id", integer=True, low=0, high=V - 1,
                                  allow_none=True)
    min_new = _checks.check_number(min_new, "min_new_tokens", integer=True, low=0, high=T)
    _checks.check_number(alpha, "length_penalty")
    _checks.check_choice(norm, "length_norm", LENGTH_NORMS)
    if not (early is True or early is False or early == "never"):
        raise ValueError(f"early_stopping must be True, False or 'never', got {early!r}")
    conv = _checks.check_choice(conv, "convention", CONVENTIONS)
    opts = []
    for name, value, preset, choices in zip(
            ("schedule", "penalty_source", "accumulate_penalty", "final_rank"),
            (schedule, source, accumulate, final_rank), _PRESETS[conv],
            (("lockstep", "staggered"), ("kept", "candidates"), None, ("augmented", "raw"))):
        if value is None:
            value = preset
        elif choices is None:
            value = _checks.check_flag(value, name)
        else:
            _checks.check_choice(value, name, choices)
        if conv != "neutral" and value != preset:
            raise ValueError(f"convention={conv!r} fixes {name}={preset!r}, got {value!r} "
                             "(use convention='neutral' to combine options freely)")
        opts.append(value)
    if opts[0] == "staggered" and opts[1] == "candidates":
        raise ValueError("penalty_source='candidates' needs schedule='lockstep'")
    if conv == "fairseq" and len(ids["eos_ids"]) != 1:
        raise ValueError(f"convention='fairseq' needs exactly one EOS id, got {ids['eos_ids']}")
    n_ret = _checks.check_number(n_ret, "num_return_sequences", integer=True, low=1, high=B,
                                 allow_none=True)
    if proc is not None and not callable(proc):
        raise TypeError(f"logprob_processor must be a callable or None, got {type(proc).__name__}")
    dt = _checks.check_float_dtype(dt, "compute_dtype")
    if conv == "hf" and pad_id is None:  # HF falls back to the first EOS id
        pad_id = ids["eos_ids"][0] if ids["eos_ids"] else None
    return dict(V=V, B=B, G=G, Bp=B // G, lam=lam, fn=fn, T=T, eos=ids["eos_ids"], pad=pad_id,
                min_new=min_new, suppress=ids["suppress_ids"], alpha=alpha, norm=norm,
                early=early, schedule=opts[0], source=opts[1], accumulate=opts[2],
                final_rank=opts[3], n_ret=n_ret, proc=proc, conv=conv, dt=dt)
