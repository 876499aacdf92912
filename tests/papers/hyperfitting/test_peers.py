"""Cross-check against the official validation functions (FreddeFrallan/Hyperfitting,
``src/validation.py``), re-written here in torch from reading them and run on a tiny random
Hugging Face GPT-2: validation loss and entropy (``+1e-9`` in the log, mean of batch means,
a smaller last batch) and the generation TTR (``generate(do_sample=False, max_length=seq_len,
pad_token_id=eos)``, TTR of ``gen_seq[context_len:][-96:]``, pads included)."""

from __future__ import annotations

import numpy as np
import pytest

from refseq.papers.hyperfitting import continue_greedy, mean_ttr, validate

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from refseq.decoding.peers import HFStepLM  # noqa: E402

V, BATCH, CTX, SEQ, WINDOW = 32, 8, 8, 24, 12


def _model(eos: int):
    torch.manual_seed(0)
    cfg = transformers.GPT2Config(n_layer=1, n_head=2, n_embd=16, vocab_size=V, n_positions=64,
                                  eos_token_id=eos, bos_token_id=eos)
    return transformers.GPT2LMHeadModel(cfg).double().eval()


def official_perplexity(model, rows):
    """``_validate_model_perplexity`` over DataLoader batches of BATCH rows (drop_last=False)."""
    total_loss, total_entropy, num_batches = 0.0, 0.0, 0
    with torch.no_grad():
        for i in range(0, len(rows), BATCH):
            x = torch.from_numpy(rows[i:i + BATCH])
            out = model(input_ids=x, labels=x)
            total_loss += out.loss.item()
            p = torch.nn.functional.softmax(out.logits, dim=-1)
            total_entropy += (-torch.sum(p * torch.log(p + 1e-9), dim=-1).mean()).item()
            num_batches += 1
    return total_loss / num_batches, total_entropy / num_batches


def official_generation(model, rows):
    """``_generation_validation``: the padded continuations and their mean TTR."""
    ttrs, conts = [], []
    with torch.no_grad():
        for i in range(0, len(rows), BATCH):
            ctx = torch.from_numpy(rows[i:i + BATCH, :CTX])
            gen = model.generate(input_ids=ctx, max_length=SEQ, do_sample=False,
                                 pad_token_id=model.config.eos_token_id)
            for g in gen:
                window = g[CTX:][-WINDOW:]
                ttrs.append(len(set(window.tolist())) / len(window))
                conts.append(g[CTX:].numpy())
    return float(np.mean(ttrs)), conts


def test_validation_loss_and_entropy_match_the_official_functions():
    model = _model(eos=0)
    val = np.random.default_rng(0).integers(0, V, (20, SEQ))  # batches of 8, 8 and 4
    loss, ent = official_perplexity(model, val)

    def logits_fn(x):
        with torch.no_grad():
            return model(input_ids=torch.from_numpy(x)).logits.numpy()

    got_loss, got_ent = validate(logits_fn, val, batch_size=BATCH)
    assert abs(got_loss - loss) <= 1e-6 and abs(got_ent - ent) <= 1e-6
    pooled = validate(logits_fn, val, batch_size=len(val))
    assert abs(pooled[1] - ent) > 1e-6  # the convention matters: pooling gives another number


def test_generation_ttr_matches_the_official_function_with_eos_and_padding():
    gen_val = np.random.default_rng(1).integers(0, V, (16, SEQ))
    free = continue_greedy(HFStepLM(_model(eos=0)), gen_val, CTX, SEQ)  # eos 0 never used here
    # an EOS id that ends some rows of every batch of 8 but not all of them (so HF pads the
    # finished rows to the full length, as in the official runs)
    eos = next(e for e in range(V) if all(
        0 < sum(e in row for row in free.tokens[i:i + BATCH]) < BATCH for i in (0, 8)))
    model = _model(eos)
    official_ttr, official_conts = official_generation(model, gen_val)
    out = continue_greedy(HFStepLM(model), gen_val, CTX, SEQ, eos_id=eos, pad_id=eos)
    np.testing.assert_array_equal(out.tokens, np.stack(official_conts))
    assert (out.lengths < SEQ - CTX).any()  # some rows stopped at EOS
    assert abs(mean_ttr(out.tokens, out.lengths, WINDOW, exclude_pad=False)
               - official_ttr) <= 1e-6
    ours = mean_ttr(out.tokens, out.lengths, WINDOW)  # pads excluded: a different number
    assert abs(ours - official_ttr) > 1e-6
