"""``python -m cdp.pack``: generate the auditor pack."""

from cdp.pack.build import main

raise SystemExit(main())
