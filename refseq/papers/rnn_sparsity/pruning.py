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

from refseq import _checks

SCOPES = ("global", "per_layer", "per_matrix")
GROUPS = {"both": (True, True), "i2h": (True, False), "h2h": (False, True)}


def percentile_threshold(weights, percent: float) -> float:
    """``np.percentile`` (linear) of the pooled absolute values of ``weights``."""
    percent = _checks.check_number(percent, "percent", low=0, high=100)
    if isinstance(weights, np.ndarray):
        arrays = [_checks.float_array(weights, "weights")]
    elif hasattr(weights, "__iter__") and not isinstance(weights, str):
        arrays = [_checks.float_array(w, f"weights[{i}]") for i, w in enumerate(weights)]
    else:
        raise TypeError("weights must be a float array or an iterable of float arrays, got "
                        f"{type(weights).__name__}")
    if sum(w.size for w in arrays) == 0:
        raise ValueError("weights must hold at least one value")
    pooled = np.concatenate([np.abs(w.astype(np.float64)).ravel() for w in arrays])
    return float(np.percentile(pooled, percent))


def _check_model(model, name: str = "model"):
    """``model`` must offer ``recurrent_layers()`` (PruneRNN, ArbitraryStructureRNN,
    ReberClassifier); ``TypeError`` otherwise."""
    if not callable(getattr(model, "recurrent_layers", None)):
        raise TypeError(f"{name} must be a model with recurrent_layers() (PruneRNN, "
                        f"ArbitraryStructureRNN or ReberClassifier), got {type(model).__name__}")
    return model


def _selected(model, i2h: bool, h2h: bool) -> dict[str, dict[str, np.ndarray]]:
    """``{layer name: {param name: weight}}`` for the selected matrices."""
    i2h, h2h = _checks.check_flag(i2h, "i2h"), _checks.check_flag(h2h, "h2h")
    if not (i2h or h2h):
        raise ValueError("select at least one of i2h, h2h")
    _check_model(model)
    kinds = [k for k, on in (("weight_ih", i2h), ("weight_hh", h2h)) if on]
    return {name: {k: getattr(layer, k) for k in kinds}
            for name, layer in model.recurrent_layers().items()}


def magnitude_masks(model, percent: float, i2h: bool = True, h2h: bool = True,
                    scope: str = "global") -> dict[str, np.ndarray]:
    """Boolean keep-masks ``{"<layer>.weight_ih" / "<layer>.weight_hh": M}`` for the selected
    matrices of ``model`` (anything with ``recurrent_layers()``)."""
    _checks.check_choice(scope, "scope", SCOPES)
    percent = _checks.check_number(percent, "percent", low=0, high=100)
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
    layers = _check_model(model).recurrent_layers()
    _checks.check_instance(masks, dict, "masks", "dict {'<layer>.weight_ih' or "
                           "'<layer>.weight_hh': boolean mask}")
    known = [f"{n}.{k}" for n in layers for k in ("weight_ih", "weight_hh")]
    checked = {}
    for name, m in masks.items():
        layer_name, _, kind = str(name).rpartition(".")
        if str(name) not in known:
            raise ValueError(f"masks names {name!r}, which is no recurrent weight of model "
                             f"(known: {known})")
        key, form = ("mask_ih", "(G*H, I)") if kind == "weight_ih" else ("mask_hh", "(G*H, H)")
        weight = getattr(layers[layer_name], kind)
        checked[name] = (layers[layer_name], key,
                         _checks.bool_mask(m, weight.shape, f"masks[{name!r}]", form))
    for layer, key, m in checked.values():  # all checked before any is installed
        layer.set_masks(**{key: m})


def sparsity(model, i2h: bool = True, h2h: bool = True) -> float:
    """Fraction of masked (removed) weights among the selected matrices."""
    sel = _selected(model, i2h, h2h)
    layers = model.recurrent_layers()
    masks = [layers[n].masks()[k] for n, ws in sel.items() for k in ws]
    return 1.0 - sum(int(m.sum()) for m in masks) / sum(m.size for m in masks)
