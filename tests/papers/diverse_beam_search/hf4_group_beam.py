"""Run Hugging Face ``generate`` group beam search in a transformers 4.x that still ships it.

Invoked as ``python hf4_group_beam.py OUT.npz CASES.json`` with ``PYTHONPATH`` pointing at a
directory holding transformers 4.40-4.49 (see docs/papers/diverse-beam-search.md); writes the
tiny GPT-2's weights and, per case, the generated sequences and ``sequences_scores``.
"""

import json
import sys

import numpy as np
import torch
import transformers
from transformers import GPT2Config, GPT2LMHeadModel


def main(out_path, cases_path):
    cases = json.load(open(cases_path))
    torch.manual_seed(0)
    cfg = GPT2Config(n_layer=1, n_head=2, n_embd=16, vocab_size=32, n_positions=64)
    model = GPT2LMHeadModel(cfg).eval()
    arrays = {f"w/{k}": v.detach().numpy() for k, v in model.state_dict().items()}
    arrays["version"] = np.array(transformers.__version__)
    for n, case in enumerate(cases):
        ids = torch.tensor([case.pop("prompt")])
        with torch.no_grad():
            out = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False,
                                 output_scores=True, return_dict_in_generate=True, **case)
        arrays[f"seq/{n}"] = out.sequences[:, ids.shape[1]:].numpy()
        arrays[f"score/{n}"] = out.sequences_scores.numpy()
    np.savez(out_path, **arrays)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
