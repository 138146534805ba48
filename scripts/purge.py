#!/usr/bin/env python3
"""Destroy expired personal data in the raw zone and record it (see ``cdp.purge``).

Usage: ``python scripts/purge.py --help``
"""

from __future__ import annotations

import sys
from pathlib import Path

try:
    from cdp.purge.cli import main
except ImportError:  # not installed: run from the source tree
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from cdp.purge.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
