"""Small experiments that reproduce papers' results; the demos in :mod:`refseq.demos` run them."""
