"""Ports (refseq's own code, no text copied) of the official RecurrentGPT functions that the
tests compare against: aiwaves-cn/RecurrentGPT ``utils.get_content_between_a_b``,
``recurrentgpt.py::RecurrentGPT.parse_output`` and ``prepare_input``'s retrieval and related-
paragraph join, ``RecurrentGPT.step``'s memory update (re-encode everything).

Only the *labels* of the official writer prompt are listed here (the structure a test checks),
never its prose.
"""

from __future__ import annotations

import re

import numpy as np

# the labelled lines of the official writer prompt, in order (input sections, then the format)
OFFICIAL_WRITER_LABELS = (
    "Input Memory:", "Input Paragraph:", "Input Instruction:", "Input Related Paragraphs:",
    "Output Paragraph:", "Output Memory:", "Rational:", "Updated Memory:", "Output Instruction:",
    "Instruction 1:", "Instruction 2:", "Instruction 3:",
)
OFFICIAL_TOP_K = 2
OFFICIAL_NEW_CHARACTER_PROB = 0.1


def between(a: str, b: str, text: str) -> str:
    """The official section rule: lazily from label ``a`` to a newline followed by ``b``."""
    found = re.search(f"{a}(.*?)\n{b}", text, re.DOTALL)
    if found is None:
        raise AttributeError("no match")  # the official code fails on .group of None
    return found.group(1).strip()


def official_parse(reply: str):
    """The official writer-reply parser: ``None`` on any failure, else a dict."""
    try:
        paragraph = between("Output Paragraph:", "Output Memory", reply)
        memory = between("Updated Memory:", "Output Instruction:", reply)
        ins1 = between("Instruction 1:", "Instruction 2", reply)
        ins2 = between("Instruction 2:", "Instruction 3", reply)
        last = reply.splitlines()[-1]
        ins3 = last[len("Instruction 3:"):] if last.startswith("Instruction 3") else last
        return {"paragraph": paragraph, "memory": memory,
                "plans": [x.strip() for x in (ins1, ins2, ins3)]}
    except Exception:  # the official code swallows everything
        return None


def official_related(long_memory: list, scores) -> str:
    """The official top-k selection (``torch.topk`` on cosine scores) and join."""
    import torch

    top = torch.topk(torch.as_tensor(scores), k=OFFICIAL_TOP_K)[1]
    return "\n".join(f"Related Paragraphs {i + 1} :" + long_memory[int(j)]
                     for i, j in enumerate(top))


def official_index(embedder, long_memory: list) -> np.ndarray:
    """The official memory update re-encodes the whole long-term memory every step."""
    return embedder.encode(list(long_memory))
