"""Small-scale reproductions of papers' results, run as ``refseq demo <name>``.

Each demo module offers ``run(...) -> dict`` (the measured numbers), ``format_table(result) ->
str`` and ``main(argv=None) -> int``. Demos are run through the command line or ``python -m
refseq``, never as scripts (see docs/design.md).
"""

DEMOS = {
    "aaren": "refseq.demos.aaren",
    "gradient-noise": "refseq.demos.gradient_noise",
    "rnn-sparsity": "refseq.demos.rnn_sparsity",
    "rnn-review": "refseq.demos.rnn_review",
    "recoding": "refseq.demos.recoding",
    "pv-rnn": "refseq.demos.pv_rnn",
}
