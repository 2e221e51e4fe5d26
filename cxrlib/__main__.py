"""``python -m cxrlib <command>``: the same code paths the notebooks use."""

from cxrlib.app.main import main

raise SystemExit(main())
