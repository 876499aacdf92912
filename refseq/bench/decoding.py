"""``refseq bench decoding``: beam search and diverse beam search over the tiny transformer with
a KV cache, time per generated token, beside Hugging Face ``generate`` on the same weights (CPU).

Every search generates exactly ``new_tokens`` tokens (EOS is banned until then by
``min_new_tokens``, on both sides), so time per token is total time / ``new_tokens``. The HF
row loads refseq's weights into ``GPT2LMHeadModel`` (:mod:`refseq.models.tiny_transformer.hf`)
and the refseq ``convention="hf"`` search runs in float32, so both produce the same sequences; the
table says whether they did.
"""

from __future__ import annotations

import time

import numpy as np

CASE = {"V": 512, "D": 64, "L": 2, "H": 4, "prompt": 8, "batch": 8, "beams": 8, "groups": 4,
        "new_tokens": 64}


def _once(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def bench_decoding(case=CASE, log=print):
    """Rows ``{"what", "ms_per_token", "note"}``; the model and prompts are seeded."""
    from refseq.decoding.beam import beam_search
    from refseq.models.tiny_transformer import TinyConfig, init_params
    from refseq.models.tiny_transformer.batched_lm import BatchedTransformerLM
    from refseq.models.tiny_transformer.lm import TransformerLM

    cfg = TinyConfig(vocab_size=case["V"], d_model=case["D"], n_layers=case["L"],
                     n_heads=case["H"], max_positions=case["prompt"] + case["new_tokens"] + 1,
                     tied_head=True, activation="gelu_tanh", dtype="float32")
    params = init_params(cfg, seed=0)
    rng = np.random.default_rng(0)
    prompts = [rng.integers(0, case["V"] - 1, case["prompt"]) for _ in range(case["batch"])]
    T, B, eos = case["new_tokens"], case["beams"], case["V"] - 1
    kw = dict(num_beams=B, max_new_tokens=T, min_new_tokens=T, eos_ids=(eos,),
              convention="hf", compute_dtype=np.float32, num_return_sequences=1)
    rows = []

    def add(what, seconds, note=""):
        rows.append({"what": what, "ms_per_token": seconds / T * 1e3, "note": note})
        log(rows[-1])

    t, ours = _once(lambda: beam_search(BatchedTransformerLM(params), prompts, **kw))
    add(f"refseq beam_search B={B}, BatchedTransformerLM", t)
    t, slow = _once(lambda: beam_search(TransformerLM(params), prompts, **kw))
    same = all(a[0].tokens.tolist() == b[0].tokens.tolist() for a, b in zip(ours, slow))
    add(f"refseq beam_search B={B}, TransformerLM (row by row)", t,
        "same sequences" if same else "DIFFERENT sequences")
    try:
        from refseq.decoding.diverse_beam import diverse_beam_search

        G = case["groups"]
        t, _ = _once(lambda: diverse_beam_search(
            BatchedTransformerLM(params), prompts, num_beams=B, num_groups=G,
            diversity_strength=0.5, max_new_tokens=T, min_new_tokens=T, eos_ids=(eos,)))
        add(f"refseq diverse_beam_search B={B} G={G}, BatchedTransformerLM", t)
    except ImportError as exc:
        rows.append({"what": "refseq diverse_beam_search", "ms_per_token": float("nan"),
                     "note": f"skipped: {exc}"})
    try:
        import torch
        import transformers

        from refseq.models.tiny_transformer.hf import gpt2_config_kwargs, to_gpt2_state_dict
    except ImportError as exc:
        rows.append({"what": "HF generate", "ms_per_token": float("nan"),
                     "note": f"skipped: {exc}"})
        return rows
    transformers.utils.logging.set_verbosity_error()
    model = transformers.GPT2LMHeadModel(transformers.GPT2Config(
        **gpt2_config_kwargs(cfg), bos_token_id=eos, eos_token_id=eos)).eval()
    model.load_state_dict({k: torch.from_numpy(v) for k, v in
                           to_gpt2_state_dict(params).items()}, strict=False)
    ids = torch.from_numpy(np.stack(prompts))  # equal lengths: no padding needed

    def hf():
        with torch.no_grad():
            return model.generate(ids, attention_mask=torch.ones_like(ids), num_beams=B,
                                  do_sample=False, max_new_tokens=T, min_new_tokens=T,
                                  eos_token_id=eos, pad_token_id=eos)

    hf()  # warm-up
    t, seqs = _once(hf)
    gen = seqs[:, case["prompt"]:].numpy()
    same = all(gen[i].tolist() == ours[i][0].tokens.tolist() for i in range(len(prompts)))
    add(f"HF generate num_beams={B} (transformers {transformers.__version__}, "
        f"{torch.get_num_threads()} threads)", t,
        "same sequences as refseq" if same else "DIFFERENT sequences from refseq")
    return rows


def format_rows(rows) -> str:
    hf = next((r["ms_per_token"] for r in rows if r["what"].startswith("HF")), float("nan"))
    lines = []
    for r in rows:
        ms = r["ms_per_token"]
        ratio = f"{ms / hf:6.2f}x HF" if np.isfinite(hf) and np.isfinite(ms) else " " * 9
        note = f"  ({r['note']})" if r.get("note") else ""
        lines.append(f"{r['what']:<66} {ms:8.2f} ms/token  {ratio}{note}")
    return "\n".join(lines)


def main(args) -> int:
    c = CASE
    print(f"refseq bench decoding: V={c['V']} D={c['D']} L={c['L']} H={c['H']} float32, batch "
          f"{c['batch']} prompts of {c['prompt']} tokens, {c['new_tokens']} new tokens; time per "
          "generated token (one run after a warm-up of HF)\n", flush=True)
    print(format_rows(bench_decoding(log=lambda r: None)))
    return 0
