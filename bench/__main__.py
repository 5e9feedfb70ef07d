"""Run every benchmark in this folder; each prints one JSON line of figures."""

import runpy
import sys
from pathlib import Path

if __name__ == "__main__":
    selected = set(sys.argv[1:])
    for script in sorted(Path(__file__).parent.glob("bench_*.py")):
        if not selected or script.stem.removeprefix("bench_") in selected:
            runpy.run_path(str(script), run_name="__main__")
