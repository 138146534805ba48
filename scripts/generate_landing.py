#!/usr/bin/env python3
"""Generate the synthetic landing zone and its ground truth (see ``cdp.generator``).

Usage: ``python scripts/generate_landing.py --help``
"""

from __future__ import annotations

import sys
from pathlib import Path

try:
    from cdp.generator.cli import main
except ImportError:  # not installed: run from the source tree
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from cdp.generator.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
