"""``refseq demo making-the-most``: degenerate modes and conditional mode search at toy scale,
recurrence for a transformer decoder and hidden-state optimisation (thesis arXiv 2408.16241,
Parts C, A and B; Yoshida, Goyal and Gimpel, arXiv 2311.08817; Yoshida, Ettinger and Gimpel,
arXiv 2008.07027; Yoshida and Gimpel, arXiv 2112.08653; docs/papers/making-the-most.md).

A. The contamination argument (reproduction A; asserted, exact). Population: the
   ``n_sym**length`` strings of ``length`` symbols, uniform; noise: the empty output
   (immediate EOS) with probability 1;
   ``q = (1 - eps) pop + eps noise`` as an :class:`ExplicitLM`. :func:`exact_mode` must return the
   empty output, :func:`degeneracy_threshold` must equal ``(1/N) / (1/N + 1)``, and the
   length-``length`` conditional mode must be a population string. Then a peaked random
   population (Dirichlet(0.1) over the same strings): the mode is the population's arg-max just
   below ``eps*`` and the empty output just above it, and the length-conditional mode is the
   population's arg-max on both sides.
   Then (reported) length-conditional modes of a random Markov LM with EOS: the unconditional
   exact mode, the exact mode for each length L, and whether ACBS with the exact length attribute
   (``num_beams`` beams, no pre-filter) finds it.
B. Reproduction B, recurrence on a long-range copy task (reported; Part A, arXiv 2008.07027,
   **reconstructed** module). Blocks of ``block`` tokens: a key (one of ``n_keys``), filler from a
   peaked Markov chain, and at the end the key of the *previous* block. Window ``w = block``: an
   isolated-window model (M = 0) cannot know the copied key (chance, ``log n_keys``); the
   recurrent model (M = 4) can. Both are trained from the same random tiny transformer with
   :func:`train_recurrent` and evaluated on held-out sequences by token kind.
C. Reproduction C, hidden-state optimisation under distribution shift (reported; Part B,
   arXiv 2112.08653). A tiny transformer is trained on samples of one random bigram source (A)
   and evaluated with :func:`hso_evaluate` (segment 16, cache 64) on fresh text of A and of a
   second random bigram source (B), both cache targets, a grid of Adam step sizes. The report
   is the mean per-token NLL of the tokens scored with a cache (those after the first segment),
   without HSO (lr = 0) and with it.
"""

from __future__ import annotations

import argparse
import itertools

import numpy as np

from refseq.cli import nonnegative_int, positive_int, seed
from refseq.decoding.exact import exact_length_conditional_modes, exact_mode
from refseq.decoding.interfaces import log_softmax
from refseq.models.tiny_transformer import TinyConfig, init_params
from refseq.models.tiny_transformer.params import params_from_named
from refseq.models.toy_lm import random_markov_lm, sample_sequences
from refseq.papers.making_the_most.conditional import conditional_beam_search, length_attribute
from refseq.papers.making_the_most.hso import hso_evaluate
from refseq.papers.making_the_most.modes import (
    ExplicitLM,
    degeneracy_threshold,
    mixture,
    mixture_mode,
)
from refseq.papers.making_the_most.recurrent import RecurrentLM
from refseq.papers.making_the_most.recurrent_train import train_recurrent
from refseq.train import train
from refseq.train.adam import Adam
from refseq.train.lm import make_lm_objective


def _contamination(pop, eos, V, eps, length):
    """Exact mode and length-conditional mode of the mixture, through the decoders."""
    noise = {(eos,): 1.0}
    lm = ExplicitLM(mixture(pop, noise, eps), V, eos)
    mode = exact_mode(lm, [], length + 1, require_eos=True)
    cond = exact_mode(lm, [], length + 1, length=length)
    analytic, _ = mixture_mode(pop, noise, eps)
    return {"eps": eps, "mode": mode.tokens, "mode_p": float(np.exp(mode.logprob)),
            "analytic_mode": analytic, "cond": cond.tokens, "cond_p": float(np.exp(cond.logprob)),
            "expanded": mode.expanded}


def copy_task(n_seq, n_blocks=4, block=16, n_keys=8, n_fill=8, seed=0):
    """``(n_seq, n_blocks * block)`` int: block b = [key_b, filler x (block - 2), key_{b-1}]
    (block 0 ends with a random key). Keys are ids ``0..n_keys-1``; filler ids ``n_keys..``
    follow a fixed Markov chain with Dirichlet(0.2) rows (seed 100)."""
    rng = np.random.default_rng(seed)
    cum = np.cumsum(np.random.default_rng(100).dirichlet(np.full(n_fill, 0.2), n_fill), axis=1)
    keys = rng.integers(0, n_keys, (n_seq, n_blocks))  # (N, blocks)
    out = np.zeros((n_seq, n_blocks, block), np.int64)  # (N, blocks, block)
    out[:, :, 0] = keys
    out[:, :, -1] = np.concatenate([rng.integers(0, n_keys, (n_seq, 1)), keys[:, :-1]], axis=1)
    for b in range(n_blocks):
        f = rng.integers(0, n_fill, n_seq)  # (N,) filler state, restarted in every block
        for j in range(1, block - 1):
            out[:, b, j] = n_keys + f
            f = np.minimum((rng.random(n_seq)[:, None] > cum[f]).sum(axis=1), n_fill - 1)
    return out.reshape(n_seq, n_blocks * block)


def _recurrence(steps, batch_size, seed, n_keys=8, block=16, n_blocks=4, n_mem=4):
    """Reproduction B: train M = 0 and M = n_mem on the copy task; NLL by token kind."""
    train, test = (copy_task(n, n_blocks, block, n_keys, seed=seed + i)
                   for i, n in enumerate((2000, 200)))
    cfg = TinyConfig(vocab_size=2 * n_keys, d_model=32, n_layers=2, n_heads=4,
                     max_positions=block + n_mem)
    base = init_params(cfg, seed)
    j = np.arange(1, n_blocks * block)  # target positions
    kinds = {"copied": (j % block == block - 1) & (j >= block), "key": j % block == 0,
             "filler": (j % block != 0) & (j % block != block - 1)}
    rows = []
    for M in (0, n_mem):
        model = RecurrentLM(base, block, M, write_layer=1, read_layer=1, seed=seed)
        model, losses = train_recurrent(model, train, lr=3e-3, steps=steps,
                                        batch_size=batch_size, bptt_windows=n_blocks, seed=seed)
        lp = log_softmax(model.forward_windows(test))[:, :-1]  # (N, n - 1, V)
        nll = -np.take_along_axis(lp, test[:, 1:, None], axis=-1)[..., 0]  # (N, n - 1)
        rows.append({"M": M, "final_train_loss": float(losses[-10:].mean()),
                     **{k: float(nll[:, m].mean()) for k, m in kinds.items()}})
    return {"rows": rows, "chance": float(np.log(n_keys)), "steps": steps,
            "batch_size": batch_size, "block": block, "n_blocks": n_blocks}


def _hso_shift(train_steps, seed, V=16, n=256, segment=16, cache_len=64, n_texts=4,
               lrs=(1e-3, 3e-3, 1e-2, 1e-1, 3e-1), batch_size=16):
    """Reproduction C: train on bigram source A, evaluate HSO on texts of A and of source B."""
    sources = {"A (train source)": random_markov_lm(V, 0.5, seed + 1),
               "B (shifted)": random_markov_lm(V, 0.5, seed + 2)}
    cfg = TinyConfig(vocab_size=V, d_model=32, n_layers=2, n_heads=4, max_positions=n)
    named, loss_and_grad = make_lm_objective(init_params(cfg, seed))
    data = sample_sequences(sources["A (train source)"], 4000, min(65, n), seed + 10)  # (N, 65)
    rng = np.random.default_rng(seed)
    log = train(named, loss_and_grad, lambda t: data[rng.integers(0, len(data), batch_size)],
                Adam(lr=3e-3), steps=train_steps, log=None)
    params = params_from_named(cfg, named)
    rows = []
    for name, src in sources.items():
        texts = sample_sequences(src, n_texts, n, seed + 20)  # (n_texts, n)
        for target in ("kv", "hidden"):
            nll = [np.mean([hso_evaluate(params, x, segment=segment, cache_len=cache_len,
                                         lr=lr, target=target).nll_per_token[segment + 1:]
                            for x in texts]) for lr in (0.0, *lrs)]  # cached tokens only
            rows.append({"source": name, "target": target, "nll": nll})
    return {"rows": rows, "lrs": tuple(lrs), "train_steps": train_steps, "V": V, "n": n,
            "segment": segment, "cache_len": cache_len, "n_texts": n_texts,
            "train_loss": float(log.losses[-20:].mean()) if train_steps else float("nan")}


def run(n_sym=6, length=4, eps=0.01, seed=0, V=8, lengths=(1, 2, 3, 4, 5, 6), num_beams=4,
        prompts=5, steps=300, batch_size=8, hso_steps=200, hso_kwargs=None):
    """Run the demo; return the numbers as a dict (see :func:`format_table`). ``steps = 0``
    skips reproduction B, ``hso_steps = 0`` reproduction C (``hso_kwargs`` go to its driver:
    ``n``, ``segment``, ``cache_len``, ``n_texts``, ``lrs``, ``batch_size``)."""
    eos = n_sym
    strings = [s + (eos,) for s in itertools.product(range(n_sym), repeat=length)]
    N = len(strings)
    uniform = {s: 1.0 / N for s in strings}
    uni = _contamination(uniform, eos, n_sym + 1, eps, length)
    uni["eps_star"] = degeneracy_threshold(uniform, {(eos,): 1.0})
    uni["eps_star_by_hand"] = (1 / N) / (1 / N + 1)
    uni["ok"] = (uni["mode"] == (eos,) and np.isclose(uni["mode_p"], eps)
                 and np.isclose(uni["eps_star"], uni["eps_star_by_hand"], rtol=1e-12)
                 and uni["cond"] in uniform and np.isclose(uni["cond_p"], (1 - eps) / N))

    rng = np.random.default_rng(seed)
    peaked = dict(zip(strings, rng.dirichlet(np.full(N, 0.1))))
    top = max(peaked, key=peaked.get)
    eps_star = degeneracy_threshold(peaked, {(eos,): 1.0})
    sides = [_contamination(peaked, eos, n_sym + 1, e, length)
             for e in (0.9 * eps_star, 1.1 * eps_star)]
    peak = {"eps_star": eps_star, "top": top, "top_p": float(peaked[top]), "sides": sides,
            "ok": (sides[0]["mode"] == top and sides[1]["mode"] == (eos,)
                   and all(s["cond"] == top and s["mode"] == s["analytic_mode"] for s in sides))}

    lm = random_markov_lm(V, 0.5, seed, eos_id=V - 1)
    rows = []
    for p in range(prompts):
        prompt = [p % (V - 1)]
        uncond = exact_mode(lm, [prompt[0]], max(lengths) + 1, require_eos=True)
        modes = exact_length_conditional_modes(lm, prompt, lengths)
        hits = 0
        for L in lengths:
            hyps = conditional_beam_search(lm, prompt, length_attribute(lm, L, prompt=prompt),
                                           num_beams=num_beams, k_pre=V, max_new_tokens=L + 1,
                                           eos_ids=V - 1)
            hits += bool(hyps) and tuple(hyps[0].tokens.tolist()) == modes[L].tokens
        rows.append({"prompt": prompt[0], "uncond_len": len(uncond.tokens) - 1,
                     "uncond_lp": uncond.logprob,
                     "modes": {L: (len(m.tokens) - 1, m.logprob) for L, m in modes.items()},
                     "acbs_hits": hits})
    return {"n_sym": n_sym, "length": length, "N": N, "uniform": uni, "peaked": peak,
            "markov": {"V": V, "lengths": tuple(lengths), "num_beams": num_beams, "rows": rows},
            "recurrence": _recurrence(steps, batch_size, seed) if steps else None,
            "hso": _hso_shift(hso_steps, seed, **(hso_kwargs or {})) if hso_steps else None,
            "ok": bool(uni["ok"] and peak["ok"])}


def format_table(result) -> str:
    """The demo's report."""
    yes = {True: "yes", False: "NO"}
    u, pk, mk = result["uniform"], result["peaked"], result["markov"]
    lines = [
        f"A. Contamination (asserted). Population: uniform over {result['N']} strings of "
        f"{result['length']} symbols; noise: the empty output.",
        f"   eps = {u['eps']:g}: exact mode {list(u['mode'])} with q = {u['mode_p']:.4g} "
        f"(vs {(1 - u['eps']) / result['N']:.3g} per population string; "
        f"{u['expanded']} prefixes expanded)",
        f"   eps* = {u['eps_star']:.4g} (by hand (1/N)/(1/N + 1) = {u['eps_star_by_hand']:.4g}); "
        f"length-{result['length']} mode {list(u['cond'])}, q = {u['cond_p']:.3g}",
        f"   Peaked population (Dirichlet(0.1)): arg-max {list(pk['top'])}, p = {pk['top_p']:.4g},"
        f" eps* = {pk['eps_star']:.4g}",
    ]
    for s in pk["sides"]:
        lines.append(f"     eps = {s['eps']:.4g}: mode {list(s['mode'])} (q = {s['mode_p']:.4g}),"
                     f" length-{result['length']} mode {list(s['cond'])}")
    lines.append(f"   claim holds: {yes[result['ok']]}")
    lines += ["", f"A, continued. Length-conditional modes of random_markov_lm(V = {mk['V']}, "
              f"alpha = 0.5), EOS = {mk['V'] - 1} (reported)",
              f"   {'prompt':>6}  {'mode len':>8}  {'log p':>7}  " +
              "  ".join(f"{'L=' + str(L) + ' log p':>10}" for L in mk["lengths"]) +
              f"  ACBS(B={mk['num_beams']}) exact"]
    for r in mk["rows"]:
        lines.append(f"   {r['prompt']:>6}  {r['uncond_len']:>8}  {r['uncond_lp']:>7.2f}  " +
                     "  ".join(f"{r['modes'][L][1]:>10.2f}" for L in mk["lengths"]) +
                     f"  {r['acbs_hits']}/{len(mk['lengths'])}")
    rc = result.get("recurrence")
    if rc:
        lines += ["", f"B. Recurrence on a copy task (reported; reconstructed module): "
                  f"{rc['n_blocks']} blocks of {rc['block']}, window {rc['block']}, "
                  f"{rc['steps']} Adam steps of {rc['batch_size']} sequences",
                  f"   held-out NLL (nats) by target kind; chance on keys = log 8 = "
                  f"{rc['chance']:.3f}",
                  f"   {'model':>22}  {'copied key':>10}  {'new key':>8}  {'filler':>7}  "
                  f"{'train loss':>10}"]
        for r in rc["rows"]:
            name = "isolated (M = 0)" if r["M"] == 0 else f"recurrent (M = {r['M']})"
            lines.append(f"   {name:>22}  {r['copied']:>10.3f}  {r['key']:>8.3f}  "
                         f"{r['filler']:>7.3f}  {r['final_train_loss']:>10.3f}")
    h = result.get("hso")
    if h:
        lines += ["", f"C. Hidden-state optimisation under distribution shift (reported): tiny "
                  f"LM trained {h['train_steps']} Adam steps on bigram source A (V = {h['V']}; "
                  f"final train loss {h['train_loss']:.3f})",
                  f"   mean NLL (nats) per cached token over {h['n_texts']} texts of "
                  f"{h['n']} tokens; segment {h['segment']}, cache {h['cache_len']}, 1 Adam "
                  f"step per segment",
                  f"   {'text':>16}  {'target':>6}  {'no HSO':>7}  " +
                  "  ".join(f"{'lr=' + format(lr, 'g'):>8}" for lr in h["lrs"])]
        for r in h["rows"]:
            lines.append(f"   {r['source']:>16}  {r['target']:>6}  {r['nll'][0]:>7.4f}  " +
                         "  ".join(f"{x:>8.4f}" for x in r["nll"][1:]))
    return "\n".join(lines)


def _unit_open(text: str) -> float:
    """``type=`` converter: a number in the open interval (0, 1)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number in (0, 1), got {text!r}") from None
    if not 0 < value < 1:  # also rejects nan
        raise argparse.ArgumentTypeError(f"must be a number in (0, 1), got {text}")
    return value


def main(argv=None) -> int:
    """Command line: print the report; exit status 1 if the asserted claim fails."""
    parser = argparse.ArgumentParser(
        prog="refseq demo making-the-most",
        description="Degenerate modes from contamination; exact length-conditional modes; ACBS; "
                    "recurrence on a copy task; hidden-state optimisation under shift.")
    parser.add_argument("--n-sym", type=positive_int, default=6)
    parser.add_argument("--length", type=positive_int, default=4)
    parser.add_argument("--eps", type=_unit_open, default=0.01)
    parser.add_argument("--seed", type=seed, default=0)
    parser.add_argument("--prompts", type=positive_int, default=5)
    parser.add_argument("--steps", type=nonnegative_int, default=300,
                        help="Adam steps per model in reproduction B (0 skips it)")
    parser.add_argument("--batch-size", type=positive_int, default=8)
    parser.add_argument("--hso-steps", type=nonnegative_int, default=200,
                        help="training steps of reproduction C's LM (0 skips it)")
    args = parser.parse_args(argv)
    result = run(n_sym=args.n_sym, length=args.length, eps=args.eps, seed=args.seed,
                 prompts=args.prompts, steps=args.steps, batch_size=args.batch_size,
                 hso_steps=args.hso_steps)
    print(format_table(result))
    return 0 if result["ok"] else 1
