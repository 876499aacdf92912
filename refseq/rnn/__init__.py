"""Shared recurrent layers with hand-derived BPTT (NumPy reference).

* :mod:`refseq.rnn.elman` — Elman layers (tanh, ReLU, sigmoid) on the recurrence engine or a
  plain loop; :mod:`refseq.rnn.lstm` — the LSTM with the classic switches (forget gate,
  peepholes, output activation).
* :mod:`refseq.rnn.bidirectional`, :mod:`refseq.rnn.stack` — bidirectional wrappers and stacks.
* :mod:`refseq.rnn.bptt` — truncated BPTT over a long stream; :mod:`refseq.rnn.output` — output
  layers and their losses; :mod:`refseq.rnn.masking` — per-sequence lengths.

The head-wise recurrence hot path these layers run on is :mod:`refseq.recurrence`.
"""
