"""Composed models built from :mod:`refseq.nn` layers and the mixing layers of the references."""

from refseq.papers.aaren.stack import (
    AarenBlockParams,
    aaren_block,
    aaren_block_step,
    aaren_stack,
    aaren_stack_step,
    init_aaren_block_params,
    init_aaren_stack_params,
)

__all__ = [
    "AarenBlockParams", "aaren_block", "aaren_block_step", "aaren_stack", "aaren_stack_step",
    "init_aaren_block_params", "init_aaren_stack_params",
]
