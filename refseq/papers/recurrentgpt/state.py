"""RecurrentGPT's recurrent state and its serialisation (Zhou et al., arXiv 2305.13304).

The paper replaces every vector of an LSTM by text: the plan ``x_t`` is the input, the paragraph
``o_{t-1}`` the fed-back output, the short-term memory ``h`` the hidden state and the long-term
memory ``c`` (stored outside the prompt, read by retrieval) the cell state. :class:`RecurrentState`
holds them with the embeddings of the long-term items, the candidate plans, the configuration
(:class:`RecurrentConfig`) and the state of the random stream that draws the new-character hint
and the generator seeds -- everything a run needs to resume exactly.

Serialisation is JSON (text, config, the PCG64 state) plus the index, either inline
(:meth:`RecurrentState.to_json`; floats written with ``repr``, which round-trips float64 exactly)
or as a ``.npy`` file next to a ``.json`` one (:meth:`RecurrentState.save`). Nothing is
pickled: ``np.load(..., allow_pickle=False)``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from refseq import _checks
from refseq.papers.recurrentgpt.prompts import Limits

__all__ = ["RecurrentConfig", "RecurrentState", "fresh_rng_state"]


@dataclass(frozen=True)
class RecurrentConfig:
    """Options of the loop (kept in the state so that a saved run resumes with them).

    ``top_k`` retrieved items (official 2); ``lag`` 1 appends the step's *input* paragraph to
    the long-term memory (the official code), 0 the paragraph just written (the paper's
    wording); ``long_memory_item`` ``"paragraph"`` (official) or ``"summary"`` (paper; one more
    generator call); ``new_character_prob`` (official 0.1); ``enforce_limits`` truncates
    generated sections to :class:`~.prompts.Limits`; ``max_retries`` calls per reply;
    ``temperature`` (official 0.5); ``retrieval`` ``"reference"`` (:func:`~.retrieval.cosine_topk`)
    or ``"kv_lookup"`` (the hot path, :func:`~.retrieval.cosine_topk_kv`).
    """

    top_k: int = 2
    lag: int = 1
    long_memory_item: str = "paragraph"
    new_character_prob: float = 0.1
    enforce_limits: bool = True
    max_retries: int = 3
    temperature: float = 0.5
    retrieval: str = "reference"
    limits: Limits = field(default_factory=Limits)

    def __post_init__(self):
        _checks.check_number(self.top_k, "top_k", integer=True, low=0)
        if self.lag not in (0, 1) or isinstance(self.lag, bool):
            raise ValueError(f"lag must be 0 or 1, got {self.lag!r}")
        _checks.check_choice(self.long_memory_item, "long_memory_item", ("paragraph", "summary"))
        _checks.check_number(self.new_character_prob, "new_character_prob", low=0, high=1)
        _checks.check_flag(self.enforce_limits, "enforce_limits")
        _checks.check_number(self.max_retries, "max_retries", integer=True, low=1)
        _checks.check_number(self.temperature, "temperature", low=0)
        _checks.check_choice(self.retrieval, "retrieval", ("reference", "kv_lookup"))
        _checks.check_instance(self.limits, Limits, "limits")

    def to_dict(self) -> dict:
        d = {k: v for k, v in asdict(self).items() if k != "limits"}
        return {**d, "limits": self.limits.to_dict()}

    @classmethod
    def from_dict(cls, d: dict) -> RecurrentConfig:
        return cls(**{**d, "limits": Limits.from_dict(d["limits"])})


def fresh_rng_state(seed: int) -> dict:
    """The PCG64 state of ``np.random.default_rng(seed)`` (a JSON-ready dict)."""
    seed = _checks.check_number(seed, "seed", integer=True, low=0)
    return np.random.default_rng(seed).bit_generator.state


@dataclass(eq=False)
class RecurrentState:
    """The text "vectors" of one RecurrentGPT step, plus what resuming needs.

    Attributes
    ----------
    step : int
        Writer steps taken so far (``t``).
    short_memory : str
        ``h_{t}``, the rolling summary (replaced every step).
    long_memory : list of str
        ``c_{t}``, the stored items (append-only).
    long_memory_index : (M, D) float64
        ``E(m)`` for each item, row ``i`` for ``long_memory[i]``.
    last_paragraph : str
        ``o_{t}`` (or its human-extended version): the next step's input paragraph.
    plan : str
        ``x_{t+1}``, the selected (and possibly edited) instruction.
    candidate_plans : list of str
        The writer's three proposals ``x^(1..3)_{t+1}``.
    config : RecurrentConfig
    rng_state : dict
        PCG64 state of the loop's random stream (new-character hint, generator seeds).

    Two states are compared through :meth:`to_json` (``==`` is identity).
    """

    step: int
    short_memory: str
    long_memory: list
    long_memory_index: np.ndarray
    last_paragraph: str
    plan: str
    candidate_plans: list
    config: RecurrentConfig = field(default_factory=RecurrentConfig)
    rng_state: dict = field(default_factory=lambda: fresh_rng_state(0))

    def __post_init__(self):
        _checks.check_number(self.step, "step", integer=True, low=0)
        for name in ("short_memory", "last_paragraph", "plan"):
            if not isinstance(getattr(self, name), str):
                raise TypeError(f"{name} must be a str, got {type(getattr(self, name)).__name__}")
        for name in ("long_memory", "candidate_plans"):
            v = getattr(self, name)
            if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
                raise TypeError(f"{name} must be a list of str")
        idx = _checks.float_array(self.long_memory_index, "long_memory_index",
                                  dtype=np.float64)
        if idx.ndim != 2 or idx.shape[0] != len(self.long_memory):
            raise ValueError(f"long_memory_index must have shape (M, D) with M = "
                             f"len(long_memory) = {len(self.long_memory)}, got {idx.shape}")
        self.long_memory_index = idx
        _checks.check_instance(self.config, RecurrentConfig, "config")
        if not isinstance(self.rng_state, dict) or "bit_generator" not in self.rng_state:
            raise TypeError("rng_state must be a numpy bit-generator state dict")

    def rng(self) -> np.random.Generator:
        """A generator positioned at ``rng_state`` (draws do not change the state)."""
        bg = getattr(np.random, self.rng_state["bit_generator"])()
        bg.state = self.rng_state
        return np.random.Generator(bg)

    def copy(self, **changes) -> RecurrentState:
        """A copy (lists and index copied) with ``changes`` applied."""
        base = replace(self, long_memory=list(self.long_memory),
                       candidate_plans=list(self.candidate_plans),
                       long_memory_index=self.long_memory_index.copy(),
                       rng_state=json.loads(json.dumps(self.rng_state)))
        return replace(base, **changes) if changes else base

    def _fields(self) -> dict:
        return {"step": self.step, "short_memory": self.short_memory,
                "long_memory": self.long_memory, "last_paragraph": self.last_paragraph,
                "plan": self.plan, "candidate_plans": self.candidate_plans,
                "config": self.config.to_dict(), "rng_state": self.rng_state}

    def to_json(self) -> str:
        """The whole state as one JSON text (the index as nested lists, exact)."""
        return json.dumps({**self._fields(), "long_memory_index":
                           self.long_memory_index.tolist(),
                           "index_width": int(self.long_memory_index.shape[1])}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> RecurrentState:
        """Inverse of :meth:`to_json`."""
        d = json.loads(text)
        width = d.pop("index_width")
        index = np.asarray(d.pop("long_memory_index"), np.float64).reshape(-1, width)
        return cls._build(d, index)

    @classmethod
    def _build(cls, d: dict, index: np.ndarray) -> RecurrentState:
        return cls(step=d["step"], short_memory=d["short_memory"],
                   long_memory=list(d["long_memory"]), long_memory_index=index,
                   last_paragraph=d["last_paragraph"], plan=d["plan"],
                   candidate_plans=list(d["candidate_plans"]),
                   config=RecurrentConfig.from_dict(d["config"]), rng_state=d["rng_state"])

    def save(self, path) -> tuple[Path, Path]:
        """Write ``<path>.json`` (text fields) and ``<path>.npy`` (the index); returns both."""
        base = Path(path)
        js, npy = base.with_name(base.name + ".json"), base.with_name(base.name + ".npy")
        js.write_text(json.dumps(self._fields(), sort_keys=True), encoding="utf-8")
        np.save(npy, self.long_memory_index, allow_pickle=False)
        return js, npy

    @classmethod
    def load(cls, path) -> RecurrentState:
        """Inverse of :meth:`save` (no pickle)."""
        base = Path(path)
        d = json.loads(base.with_name(base.name + ".json").read_text(encoding="utf-8"))
        index = np.load(base.with_name(base.name + ".npy"), allow_pickle=False)
        return cls._build(d, index)
