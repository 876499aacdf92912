"""``refseq papers``: the papers refseq implements and where each stands.

Status is updated by hand as issues land; "planned" means no code yet.
"""

from __future__ import annotations

# (number, paper, arXiv id, hot paths it touches)
PAPERS = (
    ("1", "Attention as an RNN (Aaren)", "2405.13956", "scan"),
    ("2", "Investigating Sparsity in Recurrent Neural Networks", "2407.20601", "recurrence"),
    ("3", "Stuffed Mamba: State Collapse and State Capacity", "2410.07145", "scan, recurrence"),
    ("4", "A Critical Review of RNNs for Sequence Learning", "1506.00019", "recurrence"),
    ("5", "Recoding latent sentence representations", "2101.00674", "recurrence"),
    ("6", "Predictive-coding-inspired variational RNN (PV-RNN)", "1811.01339", "—"),
    ("7", "FlashRNN", "2412.07752", "recurrence (defines it)"),
    ("8", "Adaptive Draft-Verification (ADED)", "2407.12021", "tree verification"),
    ("9", "Just read twice (JRT-Prompt, JRT-RNN)", "2407.05483", "scan"),
    ("10", "Long-term Recurrent Convolutional Networks (LRCN)", "1411.4389", "recurrence"),
    ("11", "Linear State-Space Layers (LSSL)", "2110.13985", "scan, recurrence"),
    ("12", "Recursive Speculative Decoding", "2402.14160", "tree verification"),
    ("13", "Diverse Beam Search", "1610.02424", "—"),
    ("14", "Pointer Networks", "1506.03134", "recurrence"),
    ("15", "Lexical Unit Decoding", "2405.15208", "tree verification"),
    ("16", "Token Recycling", "2408.08696", "tree verification"),
    ("17", "Chimera", "2402.15758", "tree verification"),
    ("18", "RecurrentGPT", "2305.13304", "kv lookup (optional)"),
    ("19", "Titans: Learning to Memorize at Test Time", "2501.00663", "scan, recurrence"),
    ("20", "Parallel Decoding via Hidden Transfer", "2404.12022", "tree verification"),
    ("21", "Making the Most of your Model", "2408.16241", "—"),
    ("22", "In-Context Language Learning", "2401.12973", "—"),
    ("23", "The Hyperfitting Phenomenon", "2412.04318", "—"),
    ("24", "DySpec", "2410.11744", "tree verification"),
    ("25", "Sequence to Sequence Learning", "1409.3215", "recurrence"),
    ("26", "Hardware-Aware Parallel Prompt Decoding", "2405.18628", "tree verification"),
    (
        "27",
        "Stateful Conformer (cache-based streaming ASR)",
        "2312.17279",
        "recurrence, scan (optional)",
    ),
    ("28", "Adding Gradient Noise", "1511.06807", "—"),
    ("29", "Discrete Key-Value Bottleneck", "2207.11240", "kv lookup (defines it)"),
    (
        "—",
        "Speculative verification core (cross-cutting)",
        "2211.17192 et al.",
        "tree verification (defines it)",
    ),
    ("—", "Search and sampling decoding (cross-cutting)", "—", "—"),
)

STATUS = {
    "Attention as an RNN (Aaren)": (
        "implemented",
        "refseq/attention/aaren*.py, refseq/models/aaren_stack.py, refseq/scan.py",
    ),
    "Investigating Sparsity in Recurrent Neural Networks": (
        "implemented",
        "refseq/rnn/sparsity/, refseq/tasks/reber.py (demo: refseq demo rnn-sparsity)",
    ),
    "A Critical Review of RNNs for Sequence Learning": (
        "implemented",
        "refseq/rnn/{elman,jordan,lstm,bidirectional,stack,bptt,analysis,lm}.py",
    ),
    "Recoding latent sentence representations": (
        "implemented",
        "refseq/models/recoding*.py, refseq/train/plateau.py (Numba kernel path: planned)",
    ),
    "Predictive-coding-inspired variational RNN (PV-RNN)": (
        "implemented",
        "refseq/models/{pv_rnn*,vrnn}.py (optional mtrnn kernel: planned)",
    ),
    "FlashRNN": (
        "implemented",
        "refseq/rnn/{cells,flashrnn*,layouts}.py, refseq/{jit,cuda}/recurrence.py",
    ),
    "Adding Gradient Noise": (
        "implemented",
        "refseq/train/gradient_noise.py, refseq/experiments/gradient_noise_mlp.py",
    ),
}


def format_papers() -> str:
    head = ("#", "paper", "arXiv", "hot paths", "status", "where")
    rows = [(n, p, a, h) + STATUS.get(p, ("planned", "")) for n, p, a, h in PAPERS]
    widths = [max(len(str(r[i])) for r in rows + [head]) for i in range(len(head))]
    lines = ["  ".join(str(x).ljust(w) for x, w in zip(head, widths)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(str(x).ljust(w) for x, w in zip(r, widths)).rstrip() for r in rows]
    done = sum(1 for r in rows if r[4] == "implemented")
    lines.append(f"{done} of {len(rows)} implemented")
    return "\n".join(lines)
