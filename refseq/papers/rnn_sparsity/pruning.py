"""Global percentile magnitude pruning (Darji, arXiv 2407.20601, Sec. 3.2 and 5.1; thesis code
``PruneRNN.apply_mask``).

At percent p (0 <= p <= 100), over the selected weight matrices (never biases)::

    V   = concatenation of |w| over every selected matrix
    thr = percentile(V, p)          (linear interpolation, numpy's default method)
    M_w = |w| >= thr                (a weight is removed iff |w| < thr, strictly)

Groups: ``i2h`` selects the ``weight_ih`` of every recurrent layer, ``h2h`` the ``weight_hh``,
both together is the thesis' ``both``. ``scope="global"`` pools all selected matrices of the
whole model into one threshold (what the thesis code does, though its text says "layer-wise");
``"per_layer"`` pools per recurrent layer, ``"per_matrix"`` thresholds each matrix alone. There
is no rounding rule: the removed count is ``#{|w| < thr}``. At p = 0 nothing is removed (even
exact zeros); at p = 100 only the maximal-magnitude weight(s) survive.

Masks are computed from the *stored* weights; the caller decides whether to start from the base
model (the thesis does, never cumulatively).
"""

from __future__ import annotations

import numpy as np

SCOPES = ("global", "per_layer", "per_matrix")
GROUPS = {"both": (True, True), "i2h": (True, False), "h2h": (False, True)}


def percentile_threshold(weights, percent: float) -> float:
    """``np.percentile`` (linear) of the pooled absolute values of ``weights``."""
    if not 0 <= percent <= 100:
        raise ValueError(f"percent must lie in [0, 100], got {percent}")
    weights = list(weights)
    if not weights or sum(np.size(w) for w in weights) == 0:
        raise ValueError("percentile_threshold needs at least one weight")
    pooled = np.concatenate([np.abs(np.asarray(w, np.float64)).ravel() for w in weights])
    return float(np.percentile(pooled, percent))


def _selected(model, i2h: bool, h2h: bool) -> dict[str, dict[str, np.ndarray]]:
    """``{layer name: {param name: weight}}`` for the selected matrices."""
    if not (i2h or h2h):
        raise ValueError("select at least one of i2h, h2h")
    kinds = [k for k, on in (("weight_ih", i2h), ("weight_hh", h2h)) if on]
    return {name: {k: getattr(layer, k) for k in kinds}
            for name, layer in model.recurrent_layers().items()}


def magnitude_masks(model, percent: float, i2h: bool = True, h2h: bool = True,
                    scope: str = "global") -> dict[str, np.ndarray]:
    """Boolean keep-masks ``{"<layer>.weight_ih" / "<layer>.weight_hh": M}`` for the selected
    matrices of ``model`` (anything with ``recurrent_layers()``)."""
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {SCOPES}, got {scope!r}")
    sel = _selected(model, i2h, h2h)
    if scope == "global":
        groups = [{f"{n}.{k}": w for n, ws in sel.items() for k, w in ws.items()}]
    elif scope == "per_layer":
        groups = [{f"{n}.{k}": w for k, w in ws.items()} for n, ws in sel.items()]
    else:
        groups = [{f"{n}.{k}": w} for n, ws in sel.items() for k, w in ws.items()]
    masks = {}
    for group in groups:
        thr = percentile_threshold(group.values(), percent)
        masks |= {name: np.abs(w) >= thr for name, w in group.items()}
    return masks


def apply_masks(model, masks: dict[str, np.ndarray]) -> None:
    """Install ``masks`` (names as returned by :func:`magnitude_masks`) on the model's layers;
    matrices not named keep their masks. Weights are not modified."""
    layers = model.recurrent_layers()
    for name, m in masks.items():
        layer_name, _, kind = name.rpartition(".")
        if layer_name not in layers or kind not in ("weight_ih", "weight_hh"):
            raise KeyError(f"no recurrent weight named {name!r}")
        layers[layer_name].set_masks(**{"mask_ih" if kind == "weight_ih" else "mask_hh": m})


def sparsity(model, i2h: bool = True, h2h: bool = True) -> float:
    """Fraction of masked (removed) weights among the selected matrices."""
    sel = _selected(model, i2h, h2h)
    layers = model.recurrent_layers()
    masks = [layers[n].masks()[k] for n, ws in sel.items() for k in ws]
    return 1.0 - sum(int(m.sum()) for m in masks) / sum(m.size for m in masks)
