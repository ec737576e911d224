"""``python -m resilience``: the command line (see :mod:`resilience.cli`)."""

from resilience.cli import main

raise SystemExit(main())
