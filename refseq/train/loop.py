"""A small training loop: batches -> loss and gradients -> clip / noise -> optimiser, with a
progress line and a hard stop on a non-finite loss.

``loss_and_grad(params, batch) -> (loss, grads)`` is the model: a float loss (already averaged
over the batch) and gradients with the names of ``params``. Nothing here knows about layers;
:mod:`refseq.papers.gradient_noise.mlp` is a worked example.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np

from refseq._checks import check_number
from refseq.train.gradient_noise import GradientNoise, apply_clip_and_noise
from refseq.train.params import as_param_dict, check_grads


@dataclass
class TrainLog:
    """What :func:`train` measured: per-step ``losses``, raw gradient ``grad_norms`` and ``lrs``
    (arrays of length ``steps``), total ``tokens`` and wall ``seconds``."""

    losses: np.ndarray
    grad_norms: np.ndarray
    lrs: np.ndarray
    tokens: int = 0
    seconds: float = 0.0
    lines: list[str] = field(default_factory=list)


def count_tokens(batch) -> int:
    """Default token count of a batch: the size of an ndarray batch, or of the *last* array of a
    tuple/list batch (the targets: ``(x, y)`` counts ``y.size``)."""
    if isinstance(batch, np.ndarray):
        return int(batch.size)
    if not isinstance(batch, (tuple, list)):
        raise TypeError(f"batch must be an ndarray or a tuple/list of arrays (inputs, targets), "
                        f"got {type(batch).__name__}")
    if not batch:
        raise ValueError("batch must be a non-empty tuple/list of arrays, got an empty one")
    return int(np.size(batch[-1]))


def _count_or_zero(batch) -> int:
    """``count_tokens`` where it applies, 0 for another kind of batch (train's default)."""
    if isinstance(batch, np.ndarray) or (isinstance(batch, (tuple, list)) and batch):
        return count_tokens(batch)
    return 0


def format_progress(step: int, steps: int, loss: float, lr: float, grad_norm: float,
                    tokens_per_s: float) -> str:
    """``step   100/2000  loss 0.693147  lr 1.00e-01  |g| 1.23e-04  tok/s 12345``; ``step``
    counts updates applied so far."""
    step = check_number(step, "step", integer=True, low=0)
    steps = check_number(steps, "steps", integer=True, low=0)
    loss, lr, grad_norm, tokens_per_s = (
        check_number(v, n, allow_inf=True) for v, n in ((loss, "loss"), (lr, "lr"),
                                                        (grad_norm, "grad_norm"),
                                                        (tokens_per_s, "tokens_per_s")))
    width = len(str(steps))
    return (f"step {step:>{width}d}/{steps}  loss {loss:.6f}  lr {lr:.2e}  |g| {grad_norm:.2e}  "
            f"tok/s {tokens_per_s:.0f}")


def train(params, loss_and_grad: Callable, batches: Iterable | Callable, optimizer, *,
          steps: int, schedule: Callable[[int], float] | None = None, clip: float | None = None,
          noise: GradientNoise | None = None, log_every: int = 100,
          log: Callable[[str], object] | None = print,
          tokens: Callable[[object], int] = count_tokens) -> TrainLog:
    """Run ``steps`` updates of ``optimizer`` on ``params`` (in place).

    Parameters
    ----------
    params : dict name -> ndarray, or any container :func:`as_param_dict` accepts
        Updated in place.
    loss_and_grad : callable ``(params_dict, batch) -> (loss, grads)``
        ``grads`` in any container :func:`as_param_dict` accepts, with the names of ``params``.
    batches : iterable of batches, or callable ``t -> batch``
        One batch per update; an iterable that runs out before ``steps`` raises ``ValueError``.
    optimizer : an optimiser with ``lr`` and ``step(params, grads)`` (:mod:`refseq.train`)
    steps : int
        Number of updates.
    schedule : callable ``t -> lr``, optional
        Sets ``optimizer.lr`` before update ``t`` (0-based). Without it the lr is left alone.
    clip : float, optional
        Global-norm clipping threshold (:func:`refseq.train.clipping.clip_grad_norm`).
    noise : GradientNoise, optional
        Annealed gradient noise; its ``order`` places it before or after the clipping.
    log_every : int
        A progress line (:func:`format_progress`) after every ``log_every`` updates and after the
        last one; ``log=None`` silences it. ``tok/s`` is ``tokens(batch)`` summed since the last
        line over the wall time since the last line (with the default ``count_tokens``, a batch
        that is not an array or a tuple/list of arrays counts 0).

    Returns
    -------
    TrainLog

    Raises
    ------
    FloatingPointError
        When the loss or the gradient norm is NaN or infinite; the message names the step (the
        0-based update index ``t``: ``t`` updates had been applied, none is applied at ``t``).
    """
    steps = check_number(steps, "steps", integer=True, low=0)
    log_every = check_number(log_every, "log_every", integer=True, low=1)
    clip = check_number(clip, "clip", low=0, low_open=True, allow_inf=True, allow_none=True)
    _check_callables(loss_and_grad, batches, optimizer, schedule, log, tokens)
    flat = as_param_dict(params)  # checks the leaves are ndarrays (updated in place)
    params = check_grads(params if isinstance(params, dict) else flat, "params")
    get_batch = batches if callable(batches) else _from_iterable(iter(batches), steps)
    tokens = _count_or_zero if tokens is count_tokens else tokens
    losses, norms, lrs = np.empty(steps), np.empty(steps), np.empty(steps)
    out = TrainLog(losses, norms, lrs)
    start = last_time = time.perf_counter()
    tokens_since = 0
    for t in range(steps):
        if schedule is not None:
            optimizer.lr = schedule(t)
        batch = get_batch(t)
        loss, grads = loss_and_grad(params, batch)
        loss = float(loss)
        grads = grads if isinstance(grads, Mapping) else as_param_dict(grads)
        if not np.isfinite(loss):
            raise FloatingPointError(
                f"loss became {loss} at step {t} (0-based; {t} updates applied, the last finite "
                f"loss was {losses[t - 1] if t else 'none'}); lower the lr or clip gradients")
        g, raw_norm = apply_clip_and_noise(grads, clip_norm=clip, noise=noise)
        if not np.isfinite(raw_norm):
            raise FloatingPointError(
                f"gradient norm became {raw_norm} at step {t} (0-based) with finite loss {loss}")
        optimizer.step(params, g)
        losses[t], norms[t], lrs[t] = loss, raw_norm, optimizer.lr
        n_tok = tokens(batch)
        out.tokens += n_tok
        tokens_since += n_tok
        if (t + 1) % log_every == 0 or t + 1 == steps:
            now = time.perf_counter()
            line = format_progress(t + 1, steps, loss, optimizer.lr, raw_norm,
                                   tokens_since / max(now - last_time, 1e-9))
            out.lines.append(line)
            if log is not None:
                log(line)
            last_time, tokens_since = now, 0
    out.seconds = time.perf_counter() - start
    return out


def _check_callables(loss_and_grad, batches, optimizer, schedule, log, tokens):
    if not (hasattr(optimizer, "lr") and callable(getattr(optimizer, "step", None))):
        raise TypeError(f"optimizer must be an optimiser with lr and step() (e.g. SGD), got "
                        f"{type(optimizer).__name__}")
    if not (callable(batches) or (hasattr(batches, "__iter__")
                                  and not isinstance(batches, (str, bytes)))):
        raise TypeError(f"batches must be an iterable of batches or a callable t -> batch, got "
                        f"{type(batches).__name__}")
    for name, fn, optional in (("loss_and_grad", loss_and_grad, False),
                               ("schedule", schedule, True), ("log", log, True),
                               ("tokens", tokens, False)):
        if not (callable(fn) or (optional and fn is None)):
            raise TypeError(f"{name} must be a callable" + (" or None" if optional else "")
                            + f", got {fn!r} ({type(fn).__name__})")


def _from_iterable(it, steps):
    def get(t):
        try:
            return next(it)
        except StopIteration:
            raise ValueError(f"batches ran out at step {t} of {steps}") from None
    return get
