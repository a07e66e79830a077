"""Fresh-machine check: a clean clone, a new virtual environment, the README's two commands verbatim.

Reads the two ```bash blocks under "## Quick start" in README.md (set-up + main job, then the tests),
runs each in a fresh clone of this repository's HEAD, and reports how long each took.

Run: ``python3 benchmarks/fresh_machine.py [--keep]``
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def readme_commands(readme: str) -> list[str]:
    section = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", section, flags=re.S)
    if len(blocks) != 2:
        raise SystemExit(f"expected 2 bash blocks under '## Quick start', found {len(blocks)}")
    return [b.strip() for b in blocks]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="keep the clone for inspection")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="lstm-inspect-fresh-"))
    clone = workdir / "lstm-inspect"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    commands = readme_commands((clone / "README.md").read_text(encoding="utf-8"))
    status = 0
    for label, command in zip(("set-up + main job", "tests"), commands):
        print(f"$ {command}", flush=True)
        start = time.perf_counter()
        proc = subprocess.run(["bash", "-c", command], cwd=clone, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-4:])
        print(f"{label}: exit {proc.returncode} in {seconds:.1f} s\n{tail}\n", flush=True)
        status = status or proc.returncode
    if args.keep:
        print(f"clone kept at {clone}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
