"""The Reber grammar: valid strings, hard negatives, an exact acceptor and token encoding.

Darji, "Investigating Sparsity in Recurrent Neural Networks", arXiv 2407.20601, Sec. 4.1 (the
task of every experiment). The automaton (states 0..5; 5 emits the final ``E``)::

    start "B", state 0
    0: T -> 1 | P -> 2
    1: S -> 1 | X -> 3
    2: T -> 2 | V -> 4
    3: X -> 2 | S -> 5
    4: P -> 3 | V -> 5
    5: emit "E" and stop

Every choice has probability 1/2. Valid examples: ``BTSSXXTTVVE``, ``BPTVPXTTVVE``.

Negative class (``reber_invalid``):

* ``"substitution"`` (default): a valid string with one interior symbol replaced by another of
  ``{T, P, S, X, V}``, retried until :func:`is_reber` rejects it. Same alphabet and length
  distribution as the positives, so only state tracking separates the classes.
* ``"random_letters"``: ``B`` + random capitals ``A``-``Z`` + ``E`` (the thesis data has such
  strings; its exact generator is undocumented). Lengths follow a valid string's.

Encoding: ``vocab="reber7"`` maps ``B T P S X V E`` to 1..7; ``"ascii128"`` maps a character to
its code point (the thesis' 128-entry embedding). Token 0 is padding in both; sequences are
right-padded to the longest one.
"""

from __future__ import annotations

import numpy as np

from refseq import _checks

# state -> ((symbol, next state), (symbol, next state)); state 5 accepts with "E"
TRANSITIONS: dict[int, tuple[tuple[str, int], tuple[str, int]]] = {
    0: (("T", 1), ("P", 2)),
    1: (("S", 1), ("X", 3)),
    2: (("T", 2), ("V", 4)),
    3: (("X", 2), ("S", 5)),
    4: (("P", 3), ("V", 5)),
}
ACCEPT = 5
INTERIOR = "TPSXV"
REBER7 = "BTPSXVE"  # token ids 1..7; 0 is padding
VOCABS = ("reber7", "ascii128")
STYLES = ("substitution", "random_letters")
MAX_ATTEMPTS = 1_000_000  # reber_dataset refuses length ranges that need more expected draws


def _rng(rng) -> np.random.Generator:
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    return rng


def reber_valid(rng: np.random.Generator) -> str:
    """One string of the grammar: a uniform walk from state 0 to the accepting state."""
    rng = _rng(rng)
    out, state = ["B"], 0
    while state != ACCEPT:
        symbol, state = TRANSITIONS[state][int(rng.integers(2))]
        out.append(symbol)
    out.append("E")
    return "".join(out)


def is_reber(s: str) -> bool:
    """True iff ``s`` is ``B`` + a path of the automaton from state 0 to state 5 + ``E``."""
    if not isinstance(s, str):
        raise TypeError(f"s must be a str, got {type(s).__name__}")
    if len(s) < 2 or s[0] != "B" or s[-1] != "E":
        return False
    state = 0
    for ch in s[1:-1]:
        if state == ACCEPT:
            return False  # symbols after the accepting state
        nxt = dict(TRANSITIONS[state]).get(ch)
        if nxt is None:
            return False
        state = nxt
    return state == ACCEPT


def enumerate_reber(max_len: int) -> set[str]:
    """All strings of the grammar of length <= ``max_len`` (breadth-first walk of the automaton);
    the brute-force oracle for :func:`is_reber`."""
    max_len = _checks.check_number(max_len, "max_len", integer=True, low=0)
    out, frontier = set(), [("B", 0)]
    while frontier:
        nxt = []
        for prefix, state in frontier:
            if state == ACCEPT:
                if len(prefix) + 1 <= max_len:
                    out.add(prefix + "E")
                continue
            if len(prefix) + 2 > max_len:  # one symbol and the final E still needed
                continue
            nxt.extend((prefix + sym, st) for sym, st in TRANSITIONS[state])
        frontier = nxt
    return out


def reber_invalid(rng: np.random.Generator, style: str = "substitution") -> str:
    """One negative example (see the module docstring for the two styles)."""
    rng = _rng(rng)
    _checks.check_choice(style, "style", STYLES)
    while True:
        s = list(reber_valid(rng))
        if style == "substitution":
            i = int(rng.integers(1, len(s) - 1))  # an interior position
            s[i] = str(rng.choice([c for c in INTERIOR if c != s[i]]))
        else:
            letters = rng.integers(ord("A"), ord("Z") + 1, size=len(s) - 2)
            s[1:-1] = [chr(int(c)) for c in letters]
        out = "".join(s)
        if not is_reber(out):
            return out


def _in_range(s: str, min_len, max_len) -> bool:
    return (min_len is None or len(s) >= min_len) and (max_len is None or len(s) <= max_len)


def _length_probability(min_len: int | None, max_len: int | None) -> float:
    """Probability that a uniform walk of the grammar (:func:`reber_valid`; the negatives share
    its lengths) has a length in ``[min_len, max_len]`` (``None``: unbounded), computed exactly by
    propagating the state distribution one symbol at a time."""
    lo = 0 if min_len is None else min_len
    hi = max_len
    p_state = np.zeros(ACCEPT + 1)
    p_state[0] = 1.0  # after "B": length 1
    below = within = 0.0
    length = 1
    while p_state.sum() > 1e-300 and (hi is None or length + 1 <= hi):
        done = p_state[ACCEPT]  # these strings end now with "E": length + 1
        if length + 1 < lo:
            below += done
        else:
            within += done
        nxt = np.zeros_like(p_state)
        for state, choices in TRANSITIONS.items():
            for _, st in choices:
                nxt[st] += 0.5 * p_state[state]
        p_state, length = nxt, length + 1
    return within if hi is not None else max(0.0, 1.0 - below)


def reber_dataset(n: int, rng: np.random.Generator, min_len: int | None = None,
                  max_len: int | None = None, style: str = "substitution"
                  ) -> tuple[list[str], np.ndarray]:
    """``n`` strings, the first ``n - n // 2`` valid (label 1), the rest invalid (label 0), in a
    random order; lengths filtered to ``[min_len, max_len]`` by rejection (a range so rare that
    the expected number of draws exceeds ``MAX_ATTEMPTS`` raises ``ValueError`` up front).

    Returns ``(strings, labels (n,) int64)``.
    """
    rng = _rng(rng)
    n = _checks.check_number(n, "n", integer=True, low=0)
    min_len = _checks.check_number(min_len, "min_len", integer=True, low=0, allow_none=True)
    max_len = _checks.check_number(max_len, "max_len", integer=True, low=0, allow_none=True)
    _checks.check_choice(style, "style", STYLES)
    if min_len is not None and max_len is not None and min_len > max_len:
        raise ValueError(f"need min_len <= max_len, got {min_len} > {max_len}")
    if max_len is not None and max_len < 5:
        raise ValueError(f"the shortest Reber string has length 5, got max_len = {max_len}")
    p = _length_probability(min_len, max_len)
    if n and n / max(p, 1e-300) > MAX_ATTEMPTS:
        raise ValueError(
            f"min_len = {min_len}, max_len = {max_len}: only a fraction {p:.3g} of Reber strings "
            f"has a length in that range, so drawing n = {n} by rejection would take about "
            f"{n / max(p, 1e-300):.2g} attempts (limit {MAX_ATTEMPTS:.0e}); widen the range")
    strings, labels = [], []
    for label, make in ((1, lambda: reber_valid(rng)), (0, lambda: reber_invalid(rng, style))):
        count = n - n // 2 if label == 1 else n // 2
        while count:
            s = make()
            if _in_range(s, min_len, max_len):
                strings.append(s)
                labels.append(label)
                count -= 1
    order = rng.permutation(n)
    return [strings[i] for i in order], np.asarray(labels, np.int64)[order]


def vocab_size(vocab: str) -> int:
    """Number of token ids including padding: 8 for ``reber7``, 128 for ``ascii128``."""
    _checks.check_choice(vocab, "vocab", VOCABS)
    return len(REBER7) + 1 if vocab == "reber7" else 128


def encode(strings, vocab: str = "reber7") -> tuple[np.ndarray, np.ndarray]:
    """Token ids right-padded with 0: ``(tokens (B, T) int64, lengths (B,) int64)``, T the longest
    length. Raises ``ValueError`` for a character outside the vocabulary or an empty string."""
    V = vocab_size(vocab)
    if isinstance(strings, (str, bytes)) or not hasattr(strings, "__iter__"):
        raise TypeError(f"strings must be a list of str, got {type(strings).__name__}")
    strings = list(strings)
    for b, s in enumerate(strings):
        if not isinstance(s, str):
            raise TypeError(f"strings[{b}] must be a str, got {type(s).__name__}")
    lengths = np.asarray([len(s) for s in strings], np.int64)
    if lengths.size and lengths.min() < 1:
        raise ValueError("strings must be non-empty (token 0 is reserved for padding)")
    tokens = np.zeros((len(strings), int(lengths.max(initial=0))), np.int64)  # (B, T)
    table = {c: i + 1 for i, c in enumerate(REBER7)}
    for b, s in enumerate(strings):
        for t, ch in enumerate(s):
            code = table.get(ch, 0) if vocab == "reber7" else ord(ch)
            if not 0 < code < V:
                raise ValueError(f"strings[{b}] has character {ch!r}, not in vocab {vocab!r}")
            tokens[b, t] = code
    return tokens, lengths
