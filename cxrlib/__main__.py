"""``python -m cxrlib <command>``: the same code paths the notebooks use."""

from cxrlib.cli import main

raise SystemExit(main())
