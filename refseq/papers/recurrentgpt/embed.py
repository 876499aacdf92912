"""Text embedders for RecurrentGPT's long-term memory (Zhou et al., arXiv 2305.13304).

The official code embeds the plan and every stored paragraph with the sentence-transformers model
``multi-qa-mpnet-base-cos-v1`` (unit-norm 768-d vectors). refseq needs no model: an
:class:`Embedder` is anything with ``encode(texts) -> (n, D)`` float64 rows of unit norm (zero
for a text without words), and :class:`HashingEmbedder` is a deterministic one:

.. math::

    e(x)_j = \\sum_{g \\in G(x),\\ h(g) \\bmod D = j} \\sigma(g), \\qquad
    E(x) = e(x) / \\lVert e(x) \\rVert_2,

where ``G(x)`` is the multiset of lower-cased word n-grams of ``x`` (``n`` in ``ngram``),
``h`` a fixed 64-bit hash (BLAKE2b of the UTF-8 bytes, keyed by ``seed``; never Python's
``hash``, which is randomised per process) and ``sigma(g) = +-1`` the hash's top bit (signed
hashing keeps collisions unbiased). Texts sharing rare words get a high cosine similarity, which
is all the reference loop needs.
"""

from __future__ import annotations

import hashlib
import re
from typing import Protocol, runtime_checkable

import numpy as np

from refseq import _checks

__all__ = ["Embedder", "HashingEmbedder", "SentenceTransformerEmbedder", "check_texts"]

_WORD = re.compile(r"[0-9a-z']+")


def check_texts(texts, name: str = "texts") -> list[str]:
    """Return ``texts`` as a list of str; ``TypeError`` for a bare string or non-str items."""
    if isinstance(texts, (str, bytes)) or not isinstance(texts, (list, tuple)):
        raise TypeError(f"{name} must be a list of str, got {type(texts).__name__}")
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise TypeError(f"{name}[{i}] must be a str, got {type(t).__name__}")
    return list(texts)


@runtime_checkable
class Embedder(Protocol):
    """``encode(texts: list[str]) -> (n, D)`` float64, rows of unit norm (zero rows allowed)."""

    def encode(self, texts: list[str]) -> np.ndarray: ...


class HashingEmbedder:
    """Signed feature hashing of word n-grams, L2-normalised (see the module docstring).

    Parameters
    ----------
    D : int
        Embedding width (number of hash buckets), >= 1.
    ngram : (int, int)
        Smallest and largest n-gram length, ``1 <= lo <= hi``.
    seed : int
        Key of the hash: different seeds give independent embeddings.
    """

    def __init__(self, D: int = 256, ngram: tuple = (1, 2), seed: int = 0):
        self.D = _checks.check_number(D, "D", integer=True, low=1)
        if (not isinstance(ngram, (tuple, list)) or len(ngram) != 2
                or not all(isinstance(n, int) and not isinstance(n, bool) for n in ngram)):
            raise TypeError(f"ngram must be a pair of ints (lo, hi), got {ngram!r}")
        if not 1 <= ngram[0] <= ngram[1]:
            raise ValueError(f"ngram must satisfy 1 <= lo <= hi, got {tuple(ngram)}")
        self.ngram = (int(ngram[0]), int(ngram[1]))
        self.seed = _checks.check_number(seed, "seed", integer=True, low=0)
        self._key = self.seed.to_bytes(8, "little")
        self._cache: dict[str, tuple[int, float]] = {}

    def _bucket(self, gram: str) -> tuple[int, float]:
        hit = self._cache.get(gram)
        if hit is None:
            h = int.from_bytes(hashlib.blake2b(gram.encode("utf-8"), digest_size=8,
                                               key=self._key).digest(), "little")
            hit = (h % self.D, 1.0 if h >> 63 else -1.0)
            if len(self._cache) < 1 << 16:
                self._cache[gram] = hit
        return hit

    def grams(self, text: str) -> list[str]:
        """The lower-cased word n-grams of ``text`` (words: runs of ``[0-9a-z']``)."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        words = _WORD.findall(text.lower())
        lo, hi = self.ngram
        return [" ".join(words[i:i + n]) for n in range(lo, hi + 1)
                for i in range(len(words) - n + 1)]

    def encode(self, texts: list[str]) -> np.ndarray:
        """``(n, D)`` float64: one unit-norm row per text, a zero row for a text without words."""
        texts = check_texts(texts)
        out = np.zeros((len(texts), self.D))  # (n, D)
        for r, text in enumerate(texts):
            for gram in self.grams(text):
                j, sign = self._bucket(gram)
                out[r, j] += sign
        norms = np.linalg.norm(out, axis=1, keepdims=True)  # (n, 1)
        np.divide(out, norms, out=out, where=norms > 0)
        return out


class SentenceTransformerEmbedder:  # pragma: no cover - needs the model download
    """The official embedder (``sentence_transformers``, optional; never used by tests).

    Rows are normalised (``normalize_embeddings=True``), so :func:`cosine_topk` on them equals
    the official ``util.cos_sim`` + ``torch.topk``. Importing the package or loading the model
    may download weights; refseq itself never does.
    """

    def __init__(self, model_name: str = "multi-qa-mpnet-base-cos-v1"):
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise ImportError("SentenceTransformerEmbedder needs the sentence-transformers "
                              "package (pip install sentence-transformers)") from exc
        self.model = SentenceTransformer(model_name)

    def encode(self, texts: list[str]) -> np.ndarray:
        texts = check_texts(texts)
        return np.asarray(self.model.encode(texts, normalize_embeddings=True), np.float64)
