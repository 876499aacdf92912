"""The model modules split by concept: every public definition of a part is the same object
under the entry module's name (``refseq.models.tiny_transformer``, ``pv_rnn``, ``recoding``),
so code written against the entry module and code importing a part agree. The properties of
these functions are tested through the entry modules (test_tiny_transformer.py,
test_pv_rnn.py, test_recoding.py); this ties those tests to the parts."""

import pytest

import refseq.models.pv_rnn as pv_rnn
import refseq.models.pv_rnn_loss as pv_rnn_loss
import refseq.models.pv_rnn_params as pv_rnn_params
import refseq.models.recoding as recoding
import refseq.models.recoding_grad as recoding_grad
import refseq.models.recoding_recoder as recoding_recoder
import refseq.models.recoding_step_size as recoding_step_size
import refseq.models.tiny_transformer as tiny_transformer
import refseq.models.tiny_transformer_backward as tiny_transformer_backward
import refseq.models.tiny_transformer_forward as tiny_transformer_forward
import refseq.models.tiny_transformer_kv as tiny_transformer_kv
import refseq.models.tiny_transformer_params as tiny_transformer_params

PARTS = {
    tiny_transformer: [tiny_transformer_params, tiny_transformer_forward,
                       tiny_transformer_backward, tiny_transformer_kv],
    pv_rnn: [pv_rnn_params, pv_rnn_loss],
    recoding: [recoding_grad, recoding_step_size, recoding_recoder],
}


@pytest.mark.parametrize("entry", list(PARTS), ids=lambda m: m.__name__.rsplit(".", 1)[1])
def test_entry_module_re_exports_every_part(entry):
    exported = set(entry.__all__)
    for part in PARTS[entry]:
        defined = [n for n, obj in vars(part).items()
                   if not n.startswith("_") and getattr(obj, "__module__", None) == part.__name__]
        assert defined, f"{part.__name__} defines nothing public"
        for n in defined:
            assert n in exported, f"{entry.__name__} does not export {part.__name__}.{n}"
            assert getattr(entry, n) is getattr(part, n), f"{entry.__name__}.{n}"
