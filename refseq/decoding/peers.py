"""Peer adapters: a Hugging Face causal LM as a ``StepLM``, and ``generate`` with NumPy outputs.

:class:`HFStepLM` wraps a ``transformers`` causal LM (e.g. a randomly initialised tiny
``GPT2LMHeadModel``; nothing is downloaded) so that refseq's decoders run on exactly the logits
``model.generate`` sees: the same ``forward(input_ids, cache, use_cache=True)`` calls, one prompt
forward and then one token per row and step, with each row's keys and values kept in its own
cache. :func:`run_hf_generate` runs ``generate`` itself and returns NumPy arrays to compare with.
A comparison must state HF's conventions: ``top_k=50`` by default when sampling, the beam
normaliser's length (generated tokens including EOS since v4.50), ``-1e9`` as the initial score
of beams 1..B-1.

Importing this module needs neither torch nor transformers; using it does (``ImportError`` with
the ``pip`` line otherwise).
"""

from __future__ import annotations

import inspect
from typing import NamedTuple

import numpy as np

from refseq import _checks
from refseq.decoding.interfaces import as_prompts

__all__ = ["HFComparison", "HFGenerateOutput", "HFRow", "HFState", "HFStepLM", "compare_with_hf",
           "run_hf_generate"]

_INSTALL = "pip install torch transformers  (or: pip install 'refseq[peers]')"


def _torch():
    try:
        import torch
        import transformers  # noqa: F401
    except ImportError as e:
        raise ImportError(f"refseq.decoding.peers needs torch and transformers: {_INSTALL}") from e
    return torch


def _check_model(hf_model, torch) -> None:
    if not isinstance(hf_model, torch.nn.Module) or not hasattr(hf_model, "config"):
        raise TypeError(f"hf_model must be a transformers causal LM (a torch.nn.Module with "
                        f".config), got {type(hf_model).__name__}")
    if hf_model.training:
        raise ValueError("hf_model must be in eval mode (call hf_model.eval() first): in training "
                         "mode dropout makes its logits random")


class HFRow(NamedTuple):
    """One row's cache: ``kv[l] = (keys, values)``, each ``(1, H, S, Dh)`` torch tensors."""

    kv: tuple
    length: int  # S, the number of tokens the row has seen


class HFState(NamedTuple):
    """Decoding state of :class:`HFStepLM`: one :class:`HFRow` per row. Never mutated."""

    rows: tuple


class HFStepLM:
    """A ``transformers`` causal LM as a :class:`~refseq.decoding.interfaces.StepLM`.

    Parameters
    ----------
    hf_model : a causal LM in eval mode whose cache is a ``DynamicCache`` of full-attention
        layers (tested with GPT-2; sliding-window or recurrent caches raise ``TypeError``).
    compute_dtype : None, float32 or float64 — dtype of the returned logits. None (default)
        returns them exactly as the model computed them (float32 for a float32 model, float64
        after ``model.double()``; half precisions are upcast exactly to float32).

    Notes
    -----
    Each row keeps its own per-layer keys and values, so prompts of different lengths need no
    padding and ``reorder`` is a gather of rows. Every call groups the rows by length and runs one
    batched forward per group: ``input_ids (G, T)``, an all-ones ``attention_mask (G, S + T)``,
    ``logits_to_keep=1`` when the model accepts it, and a fresh ``DynamicCache`` built by
    concatenating the group's rows (which copies them). These are the arguments ``generate``
    passes, so for one prompt the float32 logits are bitwise ``generate``'s (tested); ``generate``'s
    beam search runs its prompt forward on ``num_beams`` copies, where only last-bit differences
    can occur. A ``DynamicCache`` is updated in place by ``forward``; building a fresh one per call
    and cloning the rows out of it keeps returned states immutable (a state may be stepped twice).
    """

    def __init__(self, hf_model, compute_dtype=None):
        torch = _torch()
        _check_model(hf_model, torch)
        self.model = hf_model
        cfg = hf_model.config
        self.vocab_size = _checks.check_number(cfg.vocab_size, "hf_model.config.vocab_size",
                                               integer=True, low=1)
        self.max_positions = getattr(cfg, "max_position_embeddings", None)
        self.compute_dtype = (None if compute_dtype is None else
                              _checks.check_float_dtype(compute_dtype, "compute_dtype"))
        params = inspect.signature(hf_model.forward).parameters
        self._cache_arg = "cache" if "cache" in params else "past_key_values"  # renamed in v5
        # generate asks for the last position's logits only when the model allows it; the head's
        # matmul then has another shape, so its float32 rounding differs: do the same.
        self._extra = {"logits_to_keep": 1} if "logits_to_keep" in params else {}

    # ------------------------------------------------------------ one batched forward
    def _forward(self, ids: np.ndarray, past: list):
        """Logits (G, V) after ``ids (G, T)`` continuing the equal-length rows ``past``."""
        torch = _torch()
        from transformers import DynamicCache

        S = past[0].length if past else 0
        if self.max_positions is not None and S + ids.shape[1] > self.max_positions:
            raise ValueError(f"a row would reach {S + ids.shape[1]} tokens, past the model's "
                             f"max_position_embeddings = {self.max_positions}")
        data = None
        if past:
            data = [(torch.cat([r.kv[l][0] for r in past]),  # (G, H, S, Dh), a copy
                     torch.cat([r.kv[l][1] for r in past])) for l in range(len(past[0].kv))]
        cache = DynamicCache(data, config=self.model.config)
        with torch.no_grad():
            ids_t = torch.from_numpy(ids)  # (G, T)
            mask = torch.ones((ids.shape[0], S + ids.shape[1]), dtype=torch.long)  # (G, S + T)
            out = self.model(input_ids=ids_t, attention_mask=mask, use_cache=True,
                             **{self._cache_arg: cache}, **self._extra)
        new = getattr(out, "cache", None)
        new = getattr(out, "past_key_values", None) if new is None else new
        layers = getattr(new, "layers", None)
        if layers is None or any(type(x).__name__ != "DynamicLayer" for x in layers):
            raise TypeError("HFStepLM supports models whose cache is a DynamicCache of "
                            f"full-attention DynamicLayers, got {type(new).__name__}")
        rows = tuple(HFRow(tuple((x.keys[g:g + 1].clone(), x.values[g:g + 1].clone())
                                 for x in layers), S + ids.shape[1])
                     for g in range(ids.shape[0]))  # G x L x 2 x (1, H, S + T, Dh)
        return self._numpy(out.logits[:, -1]), rows  # (G, V)

    def _numpy(self, logits) -> np.ndarray:
        t = logits.detach().cpu()
        if t.element_size() < 4:  # float16 / bfloat16: exact upcast
            t = t.float()
        a = np.array(t.numpy())  # (G, V), a copy
        return a if self.compute_dtype is None else a.astype(self.compute_dtype)

    def _run_groups(self, ids: list, past: list | None):
        """Run every row, batching rows of equal (past length, new length); keep row order."""
        R = len(ids)
        key = [(0 if past is None else past[r].length, len(ids[r])) for r in range(R)]
        logits, rows = [None] * R, [None] * R
        for k in sorted(set(key)):
            idx = [r for r in range(R) if key[r] == k]
            lg, new = self._forward(np.stack([ids[r] for r in idx]).astype(np.int64),
                                    None if past is None else [past[r] for r in idx])
            for j, r in enumerate(idx):
                logits[r], rows[r] = lg[j], new[j]
        return np.stack(logits), HFState(tuple(rows))  # (R, V)

    def _check_ids(self, ids: np.ndarray, name: str) -> None:
        if ids.size and ids.max() >= self.vocab_size:
            raise ValueError(f"{name} must hold token ids in [0, {self.vocab_size}), found "
                             f"{ids.max()}")

    # ------------------------------------------------------------ StepLM
    def start(self, prompts):
        """Logits (B, V) for the first new token after each prompt, and the state."""
        prompts = as_prompts(prompts)
        if not prompts:
            raise ValueError("prompts must hold at least one prompt")
        for i, p in enumerate(prompts):
            if p.size == 0:
                raise ValueError(f"prompts[{i}] is empty (the model has no start token)")
            self._check_ids(p, f"prompts[{i}]")
        return self._run_groups(prompts, None)

    def step(self, state: HFState, tokens):
        """Append one token per row; logits (R, V) for the next token and a new state."""
        _checks.check_instance(state, HFState, "state", "HFState (from start, step or reorder)")
        R = len(state.rows)
        tok = _checks.int_array(tokens, "tokens", low=0, ndim=1, form="(R,)")
        if tok.shape != (R,):
            raise ValueError(f"tokens must have shape (R,) = ({R},), got {tok.shape}")
        self._check_ids(tok, "tokens")
        if R == 0:
            f64 = next(self.model.parameters()).dtype == _torch().float64
            dtype = self.compute_dtype or (np.float64 if f64 else np.float32)
            return np.zeros((0, self.vocab_size), dtype), state  # (0, V)
        return self._run_groups([tok[r:r + 1] for r in range(R)], list(state.rows))

    def reorder(self, state: HFState, rows):
        """Gather rows (they may repeat or be dropped); rows share their immutable tensors."""
        _checks.check_instance(state, HFState, "state", "HFState (from start, step or reorder)")
        idx = _checks.int_array(rows, "rows", low=0, high=len(state.rows), ndim=1, form="(R',)")
        return HFState(tuple(state.rows[int(r)] for r in idx))


class HFGenerateOutput(NamedTuple):
    sequences: np.ndarray  # (rows, T) int64: generated tokens only (HF pads finished rows)
    sequences_scores: np.ndarray | None  # (rows,) beam search's normalised scores, else None
    scores: np.ndarray  # (steps, rows', V) processed scores (rows' = batch * num_beams for beams)


_RESERVED = ("input_ids", "inputs", "attention_mask", "return_dict_in_generate", "output_scores")


def run_hf_generate(hf_model, prompt, **generate_kwargs) -> HFGenerateOutput:
    """``hf_model.generate`` on one prompt ``(P,)`` with ``return_dict_in_generate=True,
    output_scores=True`` and an all-ones attention mask; NumPy outputs.

    ``generate_kwargs`` go to ``generate`` unchanged (state HF's defaults in a comparison:
    ``top_k=50`` when sampling, ``length_penalty=1.0``, ``early_stopping=False``). ``scores``
    are HF's per-step processed scores (log-probs after processors for beam search, logits after
    processors and warpers for greedy/sampling), stacked in the dtype HF returns.
    """
    torch = _torch()
    _check_model(hf_model, torch)
    bad = sorted(set(_RESERVED) & set(generate_kwargs))
    if bad:
        raise ValueError(f"generate_kwargs must not set {bad}: run_hf_generate sets them")
    p = _checks.int_array(prompt, "prompt", low=0, high=hf_model.config.vocab_size, ndim=1,
                          form="(P,)").astype(np.int64)
    if p.size == 0:
        raise ValueError("prompt must hold at least one token id")
    ids = torch.from_numpy(p)[None]  # (1, P)
    with torch.no_grad():
        out = hf_model.generate(ids, attention_mask=torch.ones_like(ids),
                                return_dict_in_generate=True, output_scores=True,
                                **generate_kwargs)
    seq = out.sequences[:, p.size:].cpu().numpy().astype(np.int64)  # (rows, T)
    ss = getattr(out, "sequences_scores", None)
    scores = np.stack([s.detach().float().cpu().numpy() if s.element_size() < 4
                       else s.detach().cpu().numpy() for s in out.scores])  # (steps, rows', V)
    return HFGenerateOutput(seq, None if ss is None else ss.detach().cpu().numpy(), scores)


class HFComparison(NamedTuple):
    """What :func:`compare_with_hf` found: ``same_tokens`` (every returned sequence equal),
    ``max_score_diff`` (beam search: the largest ``|sequences_scores - score|``; NaN for greedy),
    and both sides' generated tokens (HF's rows padded as ``generate`` pads them)."""

    same_tokens: bool
    max_score_diff: float
    refseq_tokens: list
    hf_tokens: np.ndarray


def compare_with_hf(hf_model, prompt, *, max_new_tokens: int, num_beams: int = 1,
                    eos_id: int | None = None, pad_id: int = 0, length_penalty: float = 1.0,
                    early_stopping=False, num_return_sequences: int = 1) -> HFComparison:
    """Run Hugging Face ``generate`` and refseq's decoder on the same model and prompt.

    ``num_beams == 1``: ``greedy`` against ``generate(do_sample=False)``; otherwise
    ``beam_search(convention="hf", compute_dtype=float32)`` against ``generate(num_beams=...)``
    with the same length penalty, early stopping, EOS and pad ids. refseq runs on
    :class:`HFStepLM` (the very logits ``generate`` sees), so any difference is a difference of
    the search rules. Returns an :class:`HFComparison`.
    """
    from refseq.decoding.beam import beam_search
    from refseq.decoding.search import greedy

    num_beams = _checks.check_number(num_beams, "num_beams", integer=True, low=1)
    lm = HFStepLM(hf_model)
    V = lm.vocab_size
    max_new_tokens = _checks.check_number(max_new_tokens, "max_new_tokens", integer=True, low=1)
    eos_id = _checks.check_number(eos_id, "eos_id", integer=True, low=0, high=V - 1,
                                  allow_none=True)
    pad_id = _checks.check_number(pad_id, "pad_id", integer=True, low=0, high=V - 1)
    length_penalty = _checks.check_number(length_penalty, "length_penalty")
    num_return_sequences = _checks.check_number(num_return_sequences, "num_return_sequences",
                                                integer=True, low=1, high=num_beams)
    kw = dict(max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=pad_id)
    if eos_id is not None:
        kw["eos_token_id"] = eos_id
    if num_beams == 1:
        hf = run_hf_generate(hf_model, prompt, **kw)
        out = greedy(lm, [prompt], max_new_tokens, eos_id=eos_id, pad_id=pad_id,
                     compute_dtype=np.float32)
        ours = [out.tokens[0, :out.lengths[0]]]
        diff = float("nan")
    else:
        hf = run_hf_generate(hf_model, prompt, num_beams=num_beams, length_penalty=length_penalty,
                             early_stopping=early_stopping,
                             num_return_sequences=num_return_sequences, **kw)
        hyps = beam_search(lm, [prompt], num_beams=num_beams, max_new_tokens=max_new_tokens,
                           eos_ids=() if eos_id is None else (eos_id,), pad_id=pad_id,
                           length_penalty=length_penalty, early_stopping=early_stopping,
                           num_return_sequences=num_return_sequences, convention="hf",
                           compute_dtype=np.float32)[0]
        ours = [h.tokens for h in hyps]
        diff = max((abs(float(s) - h.score) for s, h in zip(hf.sequences_scores, hyps)),
                   default=float("nan"))
    same = len(ours) == len(hf.sequences) and all(
        hf.sequences[i, :len(t)].tolist() == t.tolist() for i, t in enumerate(ours))
    return HFComparison(same, diff, ours, hf.sequences)
