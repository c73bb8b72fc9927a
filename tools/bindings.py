"""Regenerate guest/wasikv_sdk/wit from wit/: the WIT copy plus componentize-py stubs.

python tools/bindings.py          # rewrite guest/wasikv_sdk/wit
python tools/bindings.py --check  # exit 1 if the checked-in copy is stale
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "wit"
TARGET = ROOT / "guest" / "wasikv_sdk" / "wit"
WORLD = "wasikv:app/sdk"
NOTICE = """\
# Generated: do not edit

Everything in this directory is produced by `make bindings` from the
repository's `wit/` directory: the `.wit` files are copies, and the Python
modules are componentize-py's binding stubs (componentize-py replaces them
with real bindings when it builds a component).
"""


def generate(into: Path) -> None:
    """Write the WIT copy and the binding stubs into `into`."""
    shutil.copytree(SOURCE, into, dirs_exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        tool = Path(sys.executable).with_name("componentize-py")
        subprocess.run(
            [
                str(tool),
                "-d",
                str(SOURCE),
                "-w",
                WORLD,
                "--world-module",
                "wasikv_sdk.wit",
                "bindings",
                scratch,
            ],
            check=True,
            capture_output=True,
        )
        shutil.copytree(Path(scratch) / "wasikv_sdk" / "wit", into, dirs_exist_ok=True)
    (into / "README.md").write_text(NOTICE)


def differences(left: Path, right: Path) -> list[str]:
    """Relative paths that differ between two trees (ignoring caches)."""
    found: list[str] = []

    def walk(cmp: filecmp.dircmp[str], prefix: str) -> None:
        for name in cmp.left_only + cmp.right_only + cmp.diff_files + cmp.funny_files:
            if name != "__pycache__":
                found.append(prefix + name)
        for name, sub in cmp.subdirs.items():
            if name != "__pycache__":
                walk(sub, f"{prefix}{name}/")

    walk(filecmp.dircmp(str(left), str(right), ignore=["__pycache__"]), "")
    return found


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--check", action="store_true", help="only report whether the copy is stale")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        fresh = Path(tmp) / "wit"
        generate(fresh)
        stale = differences(fresh, TARGET) if TARGET.exists() else ["(missing)"]
        if args.check:
            if stale:
                print("guest/wasikv_sdk/wit is stale; run `make bindings`:", *stale, sep="\n  ")
                return 1
            print("bindings are up to date")
            return 0
        if TARGET.exists():
            shutil.rmtree(TARGET)
        shutil.copytree(fresh, TARGET)
        print(f"regenerated {TARGET.relative_to(ROOT)}")
        return 0


if __name__ == "__main__":
    sys.exit(main())
