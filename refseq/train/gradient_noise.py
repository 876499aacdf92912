"""Annealed Gaussian gradient noise (Neelakantan et al., "Adding Gradient Noise Improves Learning
for Very Deep Networks", arXiv 1511.06807, Sec. 2, Eq. 1).

At update ``t`` (0 for the first update) every gradient entry gets independent noise

.. math::

    \\tilde g_t = g_t + \\xi_t, \\qquad \\xi_t \\sim \\mathcal N(0, \\sigma_t^2 I), \\qquad
    \\sigma_t^2 = \\frac{\\eta}{(1 + t)^{\\gamma}}

(``eta`` scales the *variance*; the standard deviation is ``sqrt(eta / (1+t)**gamma)``). The same
sigma for every tensor: no per-layer or per-magnitude scaling. ``schedule="constant"`` is the
paper's non-annealed ablation ``sigma_t^2 = eta``.

Conventions fixed here (the paper leaves them open; docs/papers/gradient-noise.md):

- **Step counting**: ``t`` = number of updates already applied, starting at ``t0`` (0 by default),
  incremented after every call, also when there is nothing to perturb.
- **Order with clipping**: ``order="after_clip"`` (default) clips first and adds noise to the
  clipped gradient, so the noise variance is exactly ``sigma_t^2``; ``"before_clip"`` adds noise
  first and clips the noisy gradient, so the update norm is bounded.
- **Random stream**: noise is drawn from one ``np.random.Generator`` (``rng``: a seed for
  ``np.random.default_rng`` or a Generator), one ``standard_normal`` call per tensor in *sorted
  name order*, in ``draw_dtype`` (float64 by default) over the tensor's full shape, then scaled by
  sigma and cast to the gradient's dtype. Same seed, names and shapes -> the same noise. A new
  parameter whose name sorts before others shifts their draws (no per-name child streams).
- **Masks**: entries with ``mask == False`` keep their gradient exactly (noise is still drawn for
  them, so the stream does not depend on the mask).
- **eta == 0** adds nothing and draws nothing: the gradients are returned as they came (same
  array objects), so a zero-noise run is bit-identical to the plain optimiser.
- **Dense**: every entry of every tensor gets noise (the paper's setting; no "touched rows only"
  variant for sparse embedding gradients).
- Noise is for training updates only; never apply it to evaluation or to frozen tensors (leave
  them out of ``grads``).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from refseq._checks import check_choice, check_float_dtype, check_number
from refseq.train.clipping import clip_grad_norm, clip_grad_value, scale_to_norm
from refseq.train.params import check_grads, global_norm

SCHEDULES = ("annealed", "constant")
ORDERS = ("after_clip", "before_clip")


def noise_variance(t, eta: float, gamma: float = 0.55):
    """``sigma_t^2 = eta / (1 + t)**gamma`` (Eq. 1); ``t`` an int or an integer array (>= 0).

    Scalar ``t`` returns a Python float, array ``t`` a float64 array; both use ``np.power`` so the
    values agree bit for bit.
    """
    t_arr = np.asarray(t)
    if t_arr.dtype.kind not in "iu" or (t_arr.size and t_arr.min() < 0):
        raise ValueError(f"t must be an integer (array) >= 0, got {t!r}")
    eta, gamma = check_number(eta, "eta", low=0), check_number(gamma, "gamma", low=0)
    var = np.float64(eta) / np.power(1.0 + t_arr.astype(np.float64), np.float64(gamma))
    return float(var) if var.ndim == 0 else var


def noise_std(t, eta: float, gamma: float = 0.55):
    """``sigma_t = sqrt(eta / (1 + t)**gamma)``."""
    std = np.sqrt(noise_variance(t, eta, gamma))
    return std if np.ndim(t) else float(std)


def constant_noise_std(eta: float) -> float:
    """The non-annealed ablation: ``sigma_t = sqrt(eta)`` for every ``t``."""
    return float(np.sqrt(np.float64(check_number(eta, "eta", low=0))))


def _as_generator(rng) -> np.random.Generator:
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        return np.random.default_rng(check_number(rng, "rng", integer=True, low=0))
    raise TypeError(f"rng must be an int seed or a np.random.Generator, got {type(rng).__name__}")


def add_gradient_noise(grads: Mapping, t: int, eta: float, gamma: float = 0.55,
                       rng: np.random.Generator | None = None, *, schedule: str = "annealed",
                       draw_dtype=np.float64,
                       masks: Mapping | None = None) -> dict[str, np.ndarray]:
    """Return ``{name: g + sigma_t * z}`` with ``z ~ N(0, I)`` drawn from ``rng``.

    Parameters
    ----------
    grads : dict name -> ndarray
        Gradients (any float dtype, any shape including 0-d); never modified.
    t : int
        Updates already applied (0 at the first update).
    eta, gamma : float
        Eq. 1's variance scale and decay exponent (paper: eta in {0.01, 0.3, 1.0}, gamma 0.55).
    rng : np.random.Generator
        Required (an explicit Generator, so that repeated calls advance one stream).
    schedule : "annealed" | "constant"
    draw_dtype : np.float64 | np.float32
        Dtype of the standard normal draws (changes the stream; default float64).
    masks : dict name -> bool ndarray, optional
        ``False`` entries receive no noise (pruned weights stay pruned). Names without a mask get
        noise everywhere.

    Returns
    -------
    dict name -> ndarray with the dtypes and shapes of ``grads`` (see the module docstring for the
    stream and the eta == 0 rule).
    """
    if not isinstance(grads, Mapping):
        raise TypeError(f"grads must be a dict name -> float array, got {type(grads).__name__}")
    if not isinstance(rng, np.random.Generator):
        raise TypeError("rng must be a np.random.Generator (create it once with "
                        "np.random.default_rng(seed) and pass the same one every step)")
    check_choice(schedule, "schedule", SCHEDULES)
    draw_dtype = check_float_dtype(draw_dtype, "draw_dtype")
    t = check_number(t, "t", integer=True, low=0)
    sigma = noise_std(t, eta, gamma) if schedule == "annealed" else constant_noise_std(eta)
    if sigma == 0.0:
        return dict(grads)
    out = {}
    for name in sorted(grads):
        g = np.asarray(grads[name])
        if g.dtype.kind != "f":
            raise TypeError(f"grads[{name!r}] must be a float array, got {g.dtype}")
        noisy = rng.standard_normal(g.shape, dtype=draw_dtype)  # z
        noisy *= sigma  # xi = sigma z, in draw_dtype
        noisy = noisy.astype(g.dtype, copy=False)
        noisy += g  # g + xi
        if masks is not None and name in masks:
            m = np.asarray(masks[name])
            if m.dtype != np.bool_ or m.shape != g.shape:
                raise ValueError(f"masks[{name!r}] must be a bool array of shape {g.shape}")
            noisy = np.where(m, noisy, g)
        out[name] = noisy
    return out


class GradientNoise:
    """Stateful noise hook: ``noisy = hook(grads)`` applies Eq. 1 at the current ``t``, then
    ``t += 1``.

    ``GradientNoise(eta, gamma=0.55, *, rng, schedule="annealed", order="after_clip", t0=0,
    draw_dtype=np.float64, masks=None)``; ``rng`` is an int seed or a Generator. ``order`` says
    where the hook sits relative to clipping when used by :func:`apply_clip_and_noise` (the
    training loop and :class:`NoisyOptimizer`). ``t0`` resumes a schedule. After each call
    ``last_std`` holds the sigma used.
    """

    def __init__(self, eta: float, gamma: float = 0.55, *, rng, schedule: str = "annealed",
                 order: str = "after_clip", t0: int = 0, draw_dtype=np.float64,
                 masks: Mapping | None = None):
        check_choice(schedule, "schedule", SCHEDULES)
        check_choice(order, "order", ORDERS)
        eta, gamma = check_number(eta, "eta", low=0), check_number(gamma, "gamma", low=0)
        self.eta, self.gamma, self.schedule, self.order = eta, gamma, schedule, order
        self.rng = _as_generator(rng)
        self.t = check_number(t0, "t0", integer=True, low=0)
        self.draw_dtype, self.masks = check_float_dtype(draw_dtype, "draw_dtype"), masks
        self.last_std = None

    def std(self, t: int | None = None) -> float:
        """sigma at update ``t`` (default: the next one)."""
        t = self.t if t is None else t
        return noise_std(t, self.eta, self.gamma) if self.schedule == "annealed" \
            else constant_noise_std(self.eta)

    def __call__(self, grads: Mapping) -> dict[str, np.ndarray]:
        self.last_std = self.std()
        out = add_gradient_noise(grads, self.t, self.eta, self.gamma, self.rng,
                                 schedule=self.schedule, draw_dtype=self.draw_dtype,
                                 masks=self.masks)
        self.t += 1
        return out


def apply_clip_and_noise(grads: Mapping, *, clip_norm: float | None = None,
                         clip_value: float | None = None, noise: GradientNoise | None = None):
    """The gradient pipeline before the optimiser: clipping (norm, then value) and noise, in the
    order ``noise.order`` (``"after_clip"``: clip then noise; ``"before_clip"``: noise then clip).

    Returns ``(grads, raw_norm)``: the processed gradients (a new dict; inputs untouched) and the
    global 2-norm of the *raw* gradients, for logging and non-finite checks.
    """
    clip_norm = check_number(clip_norm, "clip_norm", low=0, low_open=True, allow_inf=True,
                             allow_none=True)
    clip_value = check_number(clip_value, "clip_value", low=0, low_open=True, allow_inf=True,
                              allow_none=True)
    if noise is not None and not isinstance(noise, GradientNoise):
        raise TypeError(f"noise must be a GradientNoise or None, got {type(noise).__name__}")
    grads = dict(check_grads(grads))
    raw_norm = global_norm(grads)

    def clip(g, total=None):
        if clip_norm is not None:
            g = clip_grad_norm(g, clip_norm)[0] if total is None else \
                scale_to_norm(g, clip_norm, total)
        if clip_value is not None:
            g = clip_grad_value(g, clip_value)
        return g

    if noise is not None and noise.order == "before_clip":
        return clip(noise(grads)), raw_norm
    g = clip(grads, raw_norm)
    return (g if noise is None else noise(g)), raw_norm


class NoisyOptimizer:
    """Wrap an optimiser: ``step(params, grads)`` clips / adds noise (per ``order``), then calls
    ``base.step``. The counter ``t`` starts at ``t0`` and counts updates (``t`` used at the k-th
    call, 1-based, is ``t0 + k - 1``).

    ``NoisyOptimizer(base, eta, gamma=0.55, *, rng, schedule="annealed", clip_norm=None,
    clip_value=None, order="after_clip", t0=0, draw_dtype=np.float64, masks=None)``.
    ``lr`` reads and writes ``base.lr``; ``last_grad_norm`` is the global norm of the raw
    gradients at the last step.
    """

    def __init__(self, base, eta: float, gamma: float = 0.55, *, rng, schedule: str = "annealed",
                 clip_norm: float | None = None, clip_value: float | None = None,
                 order: str = "after_clip", t0: int = 0, draw_dtype=np.float64,
                 masks: Mapping | None = None):
        if not (hasattr(base, "lr") and callable(getattr(base, "step", None))):
            raise TypeError(f"base must be an optimiser with lr and step() (e.g. SGD), got "
                            f"{type(base).__name__}")
        self.base = base
        self.noise = GradientNoise(eta, gamma, rng=rng, schedule=schedule, order=order, t0=t0,
                                   draw_dtype=draw_dtype, masks=masks)
        self.clip_norm = check_number(clip_norm, "clip_norm", low=0, low_open=True,
                                      allow_inf=True, allow_none=True)
        self.clip_value = check_number(clip_value, "clip_value", low=0, low_open=True,
                                       allow_inf=True, allow_none=True)
        self.last_grad_norm = None

    @property
    def t(self) -> int:
        return self.noise.t

    @property
    def lr(self) -> float:
        return self.base.lr

    @lr.setter
    def lr(self, value: float) -> None:
        self.base.lr = value

    def step(self, params: Mapping, grads: Mapping):
        g, self.last_grad_norm = apply_clip_and_noise(
            grads, clip_norm=self.clip_norm, clip_value=self.clip_value, noise=self.noise)
        return self.base.step(params, g)
