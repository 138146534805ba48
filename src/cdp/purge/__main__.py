"""``python -m cdp.purge``: the purge's command line (:mod:`cdp.purge.cli`)."""

import sys

from cdp.purge.cli import main

sys.exit(main())
