#!/usr/bin/env python3
"""Copy crds/*.yaml (the source of truth) into the chart, or check that the copies match.

python hack/sync-chart-crds.py           # write the copies
python hack/sync-chart-crds.py --check   # exit 1 and list the drift (CI, tests)
"""

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "crds"
TARGET = ROOT / "charts" / "livedub-operator" / "files" / "crds"


def drift() -> list[str]:
    """Names of chart copies that are missing, different, or no longer in crds/."""
    wanted = {p.name: p.read_bytes() for p in SOURCE.glob("*.yaml")}
    have = {p.name: p.read_bytes() for p in TARGET.glob("*.yaml")} if TARGET.exists() else {}
    problems = [f"{name}: differs or missing" for name, data in wanted.items() if have.get(name) != data]
    problems += [f"{name}: not in crds/" for name in have if name not in wanted]
    return sorted(problems)


def sync() -> None:
    TARGET.mkdir(parents=True, exist_ok=True)
    wanted = {p.name for p in SOURCE.glob("*.yaml")}
    for stale in TARGET.glob("*.yaml"):
        if stale.name not in wanted:
            stale.unlink()
    for src in SOURCE.glob("*.yaml"):
        (TARGET / src.name).write_bytes(src.read_bytes())


def main() -> int:
    fmt = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=fmt)
    parser.add_argument("--check", action="store_true", help="only report drift; exit 1 if any")
    args = parser.parse_args()
    if args.check:
        problems = drift()
        for problem in problems:
            print(f"chart CRD drift: {problem}", file=sys.stderr)
        if problems:
            print("run: python hack/sync-chart-crds.py", file=sys.stderr)
        return 1 if problems else 0
    sync()
    return 0


if __name__ == "__main__":
    sys.exit(main())
