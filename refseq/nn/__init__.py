"""Functional layers (NumPy). Forward passes only for now; see :mod:`refseq.nn.basic`."""

from refseq.nn.basic import ffn, gelu, layer_norm, linear

__all__ = ["ffn", "gelu", "layer_norm", "linear"]
