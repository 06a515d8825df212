"""labwork inside JupyterLab and Notebook 7: the Jupyter server extension (labwork/lab/extension.py,
its endpoints in handlers.py) and the prebuilt front end (labextensions/labwork-lab, built from
the top-level labextension/ folder with `make labextension`). docs/notebooks.md says what users see.

Both are enabled on every Jupyter server labwork starts (labwork/notebooks/launch.py
`jupyter_command`); nothing here needs node at run time.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

LABEXTENSIONS = Path(__file__).with_name("labextensions")  # holds labwork-lab/ (package.json, static/)
LABEXTENSION_NAME = "labwork-lab"


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "labwork.lab"}]


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    return [{"src": f"labextensions/{LABEXTENSION_NAME}", "dest": LABEXTENSION_NAME}]


def _load_jupyter_server_extension(serverapp: Any) -> None:
    from labwork.lab.extension import load
    load(serverapp)
