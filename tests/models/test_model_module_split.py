"""The model modules split by concept: every public definition of a part is the same object
under the entry module's name (``refseq.models.tiny_transformer``, ``pv_rnn``, ``recoding``),
so code written against the entry module and code importing a part agree."""

import importlib

import pytest

PARTS = {
    "refseq.models.tiny_transformer": [
        "refseq.models.tiny_transformer_params",
        "refseq.models.tiny_transformer_forward",
        "refseq.models.tiny_transformer_backward",
        "refseq.models.tiny_transformer_kv",
    ],
    "refseq.models.pv_rnn": ["refseq.models.pv_rnn_params", "refseq.models.pv_rnn_loss"],
    "refseq.models.recoding": [
        "refseq.models.recoding_grad",
        "refseq.models.recoding_step_size",
        "refseq.models.recoding_recoder",
    ],
}


@pytest.mark.parametrize("entry", sorted(PARTS))
def test_entry_module_re_exports_every_part(entry):
    module = importlib.import_module(entry)
    exported = set(module.__all__)
    for part_name in PARTS[entry]:
        part = importlib.import_module(part_name)
        defined = [n for n, obj in vars(part).items()
                   if not n.startswith("_") and getattr(obj, "__module__", None) == part_name]
        assert defined, f"{part_name} defines nothing public"
        for n in defined:
            assert n in exported, f"{entry} does not export {part_name}.{n}"
            assert getattr(module, n) is getattr(part, n), f"{entry}.{n}"
