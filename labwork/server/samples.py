"""Sample projects (`labwork serve --sample DIR`, what `make run` uses) run on a copy.

Jupyter saves, trusts and re-executes notebooks in place, and the sample's cells write
`outputs/`; run in the repository's own folder they would dirty the checkout. So the sample is
copied once into `LABWORK_HOME/samples/<folder name>` and the copy is registered; a copy that
exists already is the user's own work and is kept as it is.
"""
from __future__ import annotations

import shutil
from pathlib import Path

from labwork.errors import NotFound
from labwork.private import private_dir

_SKIP = shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__", "*.pkl", "spark-warehouse",
                               "metastore_db", "derby.log")


def sample_copy(folder: str | Path, home: Path) -> Path:
    """The folder to register for sample `folder`: its copy under `home/samples`, made if missing."""
    src = Path(folder).expanduser().resolve()
    if not (src / "labwork.toml").is_file():
        raise NotFound("not a labwork project (no labwork.toml)", where=str(folder))
    dest = private_dir(home / "samples") / src.name
    if not dest.exists():
        tmp = dest.with_name(f".{dest.name}.copying")
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(src, tmp, ignore=_SKIP)
        tmp.rename(dest)
    return dest
