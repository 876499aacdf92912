"""The draft model as DySpec's tree builders see it (Xiong et al., arXiv 2410.11744, Sec. 4).

A builder asks for the draft distribution ``D[.]`` after nodes of the growing tree, one batch of
nodes per *draft call* (Algorithm 1: one node per call; Algorithm 2: one layer per call). Nodes
are named by their **prefix**: the tuple of drafted tokens on the way from the root to the node
(``()`` is the root). Siblings never share a token (sampling without replacement), so a prefix
names one node.

Protocol :class:`DraftLM`:

==================================  ===========================================================
``reset(context (n,), root)``       a new step: ``context`` is every committed token before
                                    the root token ``root``
``probs(prefixes) -> (R, V)``       ``softmax(z / T)`` (float64) after ``context, root,
                                    prefix`` for each prefix; one draft call. Every prefix's
                                    parent (``prefix[:-1]``) must be scored earlier in this
                                    step or earlier in the same list
``commit(accepted)``                after verification: the tokens accepted below the root
``vocab_size``, ``calls``           V, and the number of draft calls made so far
==================================  ===========================================================

Implementations: :class:`TabularDraft` and :class:`CallableDraft` (stateless, they re-read each
node's full prefix) and :class:`TransformerDraft` (a tiny transformer with its own KV cache, a
tree-attention forward over the newly created nodes and cache compaction with the core's
:func:`~refseq.decoding.speculative.kv.commit_path`). Temperature default 0.6, the paper's
setting (Sec. 6.1).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from refseq import _checks
from refseq.decoding.interfaces import log_softmax
from refseq.decoding.speculative.kv import commit_path
from refseq.models.tiny_transformer import forward
from refseq.models.tiny_transformer.params import check_params

__all__ = ["CallableDraft", "DraftLM", "TabularDraft", "TransformerDraft"]


@runtime_checkable
class DraftLM(Protocol):
    """A draft model queried by prefixes of the draft tree (see the module docstring)."""

    vocab_size: int
    calls: int

    def reset(self, context, root) -> None: ...

    def probs(self, prefixes) -> np.ndarray: ...

    def commit(self, accepted) -> None: ...


def _vocab_size(obj, name: str) -> int:
    """``obj.vocab_size`` as an int >= 1, or ``TypeError``/``ValueError`` naming ``name``."""
    if not hasattr(obj, "vocab_size"):
        raise TypeError(f"{name} must have a vocab_size attribute (an int >= 1), got "
                        f"{type(obj).__name__}")
    return _checks.check_number(obj.vocab_size, f"{name}.vocab_size", integer=True, low=1)


def _temperature(t):
    return _checks.check_number(t, "temperature", low=0, low_open=True)


def _prefixes(prefixes, V: int) -> list:
    """``prefixes`` as a non-empty list of tuples of Python ints in ``[0, V)``."""
    if not isinstance(prefixes, (list, tuple)) or not prefixes:
        raise TypeError("prefixes must be a non-empty list of token tuples (() is the root)")
    out = []
    for k, p in enumerate(prefixes):
        if not isinstance(p, tuple) or not all(isinstance(t, (int, np.integer)) for t in p):
            raise TypeError(f"prefixes[{k}] must be a tuple of token ids, got {p!r}")
        if any(not 0 <= t < V for t in p):
            raise ValueError(f"prefixes[{k}] must hold tokens in [0, V = {V}), got {p!r}")
        out.append(tuple(int(t) for t in p))
    return out


def _context(context, root, V: int):
    ctx = _checks.int_array(np.asarray(context, np.int64) if len(context) == 0 else context,
                            "context", ndim=1, low=0, high=V, form="(n,)")
    root = _checks.check_number(root, "root", integer=True, low=0, high=V - 1)
    return [int(t) for t in ctx], root


class _Stateless:
    """Shared part of the drafts that re-read ``context + root + prefix`` every call."""

    def __init__(self):
        self.calls, self._seq = 0, None

    def reset(self, context, root):
        ctx, root = _context(context, root, self.vocab_size)
        self._seq = ctx + [root]

    def probs(self, prefixes):
        if self._seq is None:
            raise ValueError("call reset(context, root) before probs")
        prefixes = _prefixes(prefixes, self.vocab_size)
        self.calls += 1
        return self._rows([tuple(self._seq) + p for p in prefixes])

    def commit(self, accepted):
        pass  # nothing cached


class TabularDraft(_Stateless):
    """Draft ``softmax(log q(. | prefix) / temperature)`` of a ``StepLM`` (e.g. a ``TabularLM``).

    Parameters
    ----------
    lm : StepLM
        ``lm.start(prompts) -> (logits (R, V), state)`` is all that is used.
    temperature : float > 0, default 0.6
    """

    def __init__(self, lm, temperature: float = 0.6):
        super().__init__()
        self.lm = _checks.check_methods(lm, "lm", ("start", "step", "reorder"),
                                        "a StepLM (start, step and reorder methods, e.g. "
                                        "TabularLM)")
        self.vocab_size = _vocab_size(lm, "lm")
        self.temperature = _temperature(temperature)

    def _rows(self, seqs):
        logits, _ = self.lm.start([np.array(s, np.int64) for s in seqs])
        z = log_softmax(np.asarray(logits, np.float64))  # (R, V), -inf stays -inf
        return np.exp(log_softmax(z / self.temperature))


class CallableDraft(_Stateless):
    """Draft given by a callable ``fn(sequence: tuple) -> (V,)`` probabilities (float32 or
    float64, summing to 1 within ``sqrt(eps_float32)``; used as given, in float64).

    ``sequence`` is ``context + (root,) + prefix``: the convention of
    :mod:`refseq.decoding.speculative.exact`, so the same callable feeds the exact calculator.
    """

    def __init__(self, fn, vocab_size: int):
        super().__init__()
        if not callable(fn):
            raise TypeError(f"fn must be a callable sequence -> (V,) probabilities, got "
                            f"{type(fn).__name__}")
        self.fn = fn
        self.vocab_size = _checks.check_number(vocab_size, "vocab_size", integer=True, low=1)

    def _rows(self, seqs):
        rows = np.stack([np.asarray(self.fn(s), np.float64) for s in seqs])  # (R, V)
        tol = np.sqrt(np.finfo(np.float32).eps)  # float32 rows are accepted, used as given
        if rows.shape[1] != self.vocab_size or not np.isfinite(rows).all() or (rows < 0).any() \
                or np.abs(rows.sum(axis=1) - 1).max() > tol:
            raise ValueError(f"fn must return (V = {self.vocab_size},) probabilities summing "
                             f"to 1")
        return rows


class TransformerDraft:
    """A tiny-transformer draft with its own KV cache (Sec. 4.2: the draft scores the new nodes
    of the tree under tree attention, and its cache is compacted like the target's).

    Layout: ``cache[..., :n_past, :]`` holds the committed tokens ``committed``; during a step the
    tree block follows, one slot per scored node in scoring order (the root first). ``reset``
    catches up on committed tokens the cache does not hold yet (accepted leaves whose draft
    distribution was never needed, with lazy evaluation) by a plain causal forward, and rebuilds
    from scratch if ``context`` does not extend ``committed``. ``commit`` keeps the root and the
    scored accepted nodes (:func:`commit_path`).

    Parameters
    ----------
    params : TinyParams
    temperature : float > 0, default 0.6
    """

    def __init__(self, params, temperature: float = 0.6):
        self.params = params
        self.config = check_params(params)
        self.vocab_size = self.config.vocab_size
        self.temperature = _temperature(temperature)
        self.calls, self.n_past, self.cache = 0, 0, None
        self.committed: list = []
        self._root, self._slot, self._rows = None, {}, []

    def reset(self, context, root):
        ctx, root = _context(context, root, self.vocab_size)
        if self.cache is None or ctx[:self.n_past] != self.committed:
            self.cache, self.n_past, self.committed = None, 0, []
        todo = ctx[self.n_past:]  # committed tokens not cached yet
        if todo:
            _, _, kv = forward(self.params, tokens=np.array(todo, np.int64),
                               past_kv=self.cache)  # plain causal forward, positions n_past..
            self.cache, self.n_past, self.committed = kv, len(ctx), list(ctx)
        if self.cache is not None:
            self.cache = self.cache[..., :self.n_past, :]  # drop an uncommitted tree block
        self._root, self._slot, self._rows = root, {}, []

    def probs(self, prefixes):
        if self._root is None:
            raise ValueError("call reset(context, root) before probs")
        prefixes = _prefixes(prefixes, self.vocab_size)
        new = [p for p in dict.fromkeys(prefixes) if p not in self._slot]
        if new:
            self._score(new)
        return np.stack([self._rows[self._slot[p]] for p in prefixes])  # (R, V)

    def _score(self, new):
        """One forward over the new nodes: each attends to the committed slots, its scored
        ancestors and itself, at position ``n_past + depth``."""
        first = len(self._rows)
        for k, p in enumerate(new):
            if p and p[:-1] not in self._slot:
                raise ValueError(f"prefix {p} needs its parent {p[:-1]} scored first")
            self._slot[p] = first + k
        T, S = len(new), self.n_past + first
        tokens = np.array([p[-1] if p else self._root for p in new], np.int64)  # (T,)
        allow = np.zeros((T, S + T), bool)
        allow[:, :self.n_past] = True
        for k, p in enumerate(new):
            allow[k, [self.n_past + self._slot[p[:j]] for j in range(len(p) + 1)]] = True
        pos = self.n_past + np.array([len(p) for p in new], np.int64)
        logits, _, self.cache = forward(self.params, tokens=tokens, positions=pos,
                                        allow_mask=allow, past_kv=self.cache)  # (T, V)
        z = log_softmax(np.asarray(logits, np.float64))
        self._rows += list(np.exp(log_softmax(z / self.temperature)))
        self.calls += 1

    def commit(self, accepted):
        """Keep the root and the accepted nodes that were scored (``accepted``: tuple of the
        tokens accepted below the root, in order)."""
        if self._root is None:
            raise ValueError("call reset(context, root) before commit")
        accepted = tuple(int(t) for t in accepted)
        path = []
        for j in range(len(accepted) + 1):
            if accepted[:j] not in self._slot:
                break
            path.append(self._slot[accepted[:j]])
        if path:
            self.n_past = commit_path(self.cache, self.n_past, np.array(path, np.int64))
            self.cache = self.cache[..., :self.n_past, :]
            self.committed += [self._root] + list(accepted[:len(path) - 1])
        self._root, self._slot, self._rows = None, {}, []
