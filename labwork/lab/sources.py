"""The hash of the front end's sources (the top-level labextension/ folder), recorded beside the
prebuilt extension at build time (`make labextension`), so a test can say when the committed build
is not what the sources say.

    python -m labwork.lab.sources labextension    # write labextensions/labwork-lab/sources.sha256
"""
from __future__ import annotations

import hashlib
import sys
from pathlib import Path

from labwork.lab import LABEXTENSION_NAME, LABEXTENSIONS

SOURCES = ("package.json", "package-lock.json", "tsconfig.json", "src", "style")
RECORD = LABEXTENSIONS / LABEXTENSION_NAME / "sources.sha256"


def source_files(folder: Path) -> list[Path]:
    out: list[Path] = []
    for name in SOURCES:
        path = folder / name
        out.extend(sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path])
    return out


def source_hash(folder: Path) -> str:
    """sha256 over each source's path (relative to `folder`) and bytes, in a fixed order."""
    digest = hashlib.sha256()
    for path in source_files(folder):
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def recorded() -> str | None:
    try:
        return RECORD.read_text().split()[0]
    except (OSError, IndexError):
        return None


def main(argv: list[str]) -> int:
    folder = Path(argv[0] if argv else "labextension")
    RECORD.write_text(f"{source_hash(folder)}  labextension/ ({', '.join(SOURCES)})\n")
    print(f"labwork: recorded the hash of {folder}'s sources in {RECORD}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
