"""``python -m rcollapse.report DIR [DIR ...]``: the sweep report (see analysis/sweep_report.py)."""

import sys

from rcollapse.analysis.sweep_report import main

if __name__ == "__main__":
    sys.exit(main())
