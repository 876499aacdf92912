"""``python -m refseq``: the same command line as the ``refseq`` console script."""

from refseq.cli import main

raise SystemExit(main())
