"""Speculative decoding: the verification core (guide: docs/speculative.md).

- :mod:`~refseq.decoding.speculative.tree` — draft trees, tree batches, masks, positions,
  retrieve paths, Medusa buffers;
- :mod:`~refseq.decoding.speculative.verify` — greedy verification (tree, paths, chain) and
  stochastic verification in the ``"iid"``, ``"wor"`` and ``"point"`` modes with explicit
  uniforms; Medusa's typical acceptance (lossy);
- :mod:`~refseq.decoding.speculative.exact` — the exact distribution of a step's emitted tokens,
  which proves losslessness on tiny vocabularies;
- :mod:`~refseq.decoding.speculative.target`, :mod:`~refseq.decoding.speculative.kv`,
  :mod:`~refseq.decoding.speculative.engine`, :mod:`~refseq.decoding.speculative.drafters` —
  the target on a tree, KV compaction, the generation loop and simple drafters;
- :mod:`~refseq.decoding.speculative.batched` — the loop on B rows at once, verified by the
  batched kernels of :mod:`refseq.tree_verify`;
- :mod:`~refseq.decoding.speculative.toy_result` — the small-scale result of docs/speculative.md.

The batched kernels of the same rules are the tree-verification hot path, :mod:`refseq.tree_verify`.
"""

from refseq.decoding.speculative.batch import TreeBatch
from refseq.decoding.speculative.batched import RowsTreeLM, speculative_generate_batch
from refseq.decoding.speculative.buffers import (
    ancestor_mask,
    attention_mask,
    position_ids,
    retrieve_paths,
)
from refseq.decoding.speculative.drafters import (
    AlwaysWrongDrafter,
    ChainDrafter,
    OracleDrafter,
    RandomDrafter,
    SampledTreeDrafter,
)
from refseq.decoding.speculative.engine import (
    Drafter,
    SpecStats,
    plain_greedy,
    plain_sample,
    speculative_generate,
)
from refseq.decoding.speculative.greedy import (
    VerifyResult,
    verify_greedy_chain,
    verify_greedy_paths,
    verify_greedy_tree,
)
from refseq.decoding.speculative.kv import commit_path
from refseq.decoding.speculative.target import (
    BatchedTreeLM,
    TabularTreeLM,
    TinyTransformerTreeLM,
    TreeLM,
)
from refseq.decoding.speculative.tree import DraftTree
from refseq.decoding.speculative.verify import MODES, verify_tree_stochastic

__all__ = [
    "MODES", "AlwaysWrongDrafter", "BatchedTreeLM", "ChainDrafter", "DraftTree", "Drafter",
    "OracleDrafter", "RandomDrafter", "RowsTreeLM", "SampledTreeDrafter", "SpecStats",
    "TabularTreeLM", "TinyTransformerTreeLM", "TreeBatch", "TreeLM", "VerifyResult",
    "ancestor_mask", "attention_mask", "commit_path", "plain_greedy", "plain_sample",
    "position_ids", "retrieve_paths", "speculative_generate", "speculative_generate_batch",
    "verify_greedy_chain", "verify_greedy_paths", "verify_greedy_tree", "verify_tree_stochastic",
]
