"""Entry point of labwork's sparkmagic kernels.

Before handing over to sparkmagic's kernel, it gives this kernel its own copy of the run
configuration's sparkmagic config with the notebook path and kernel id in the session's Spark
conf (`spark.labwork.notebook`, `spark.labwork.kernel`), so run history and the dashboard can tell
which notebook a gateway session serves, and records the launch for *recent notebooks*.

It also sets up run history in the kernel (`sparkmagic_history`): the user's cells are recorded
in this kernel's run (`spark.labwork.run` in the session's conf), and `%labwork` is preloaded.
Against labwork's gateway, `%%sql -o`, `%%spark -o` and `%%send_to_spark -t df` move their rows
as Arrow (`labwork.gateway.arrow_magics`); against another Livy, sparkmagic's own magics run.
"""
from __future__ import annotations

import atexit
import json
import os
import runpy
import shutil
import sys
from pathlib import Path

from labwork import envvars
from labwork.gateway.arrow_magics import install as install_arrow
from labwork.kernels.launch import _kernel_id, record_launch
from labwork.kernels.sparkmagic_history import install
from labwork.spark_properties import KERNEL_TAG, NOTEBOOK_TAG, RECORDER_TAG, RUN_TAG


def per_kernel_conf_dir(base: Path, kernel_id: str, notebook: str | None, run_id: str | None = None) -> Path:
    config = json.loads((base / "config.json").read_text())
    conf = config.setdefault("session_configs", {}).setdefault("conf", {})
    if notebook:
        conf[NOTEBOOK_TAG] = notebook
    conf[KERNEL_TAG] = kernel_id
    if run_id:  # this kernel records its cells (sparkmagic_history): the gateway must not
        conf[RUN_TAG] = run_id
        conf[RECORDER_TAG] = "kernel"
    out = base / "kernels" / kernel_id
    out.mkdir(parents=True, exist_ok=True)
    fd = os.open(out / "config.json", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(config, fh, indent=2)
    return out


def main() -> None:
    args = sys.argv[1:]
    if len(args) < 2 or args[0] != "--module":
        sys.exit("usage: python -m labwork.kernels.sparkmagic_launch --module MODULE -f CONNECTION_FILE")
    module, rest = args[1], args[2:]
    base = Path(os.environ["SPARKMAGIC_CONF_DIR"])
    notebook = os.environ.get("JPY_SESSION_NAME")
    project = envvars.get(envvars.PROJECT_DIR) or ""
    if notebook and project and notebook.startswith(project.rstrip("/") + "/"):
        notebook = os.path.relpath(notebook, project)
    kernel_id = _kernel_id(rest) or str(os.getpid())
    from labwork.history.recorder import kernel_recorder
    rec = kernel_recorder(kernel_id)
    conf_dir = per_kernel_conf_dir(base, kernel_id, notebook, rec.run_id)
    atexit.register(shutil.rmtree, conf_dir, True)
    os.environ["SPARKMAGIC_CONF_DIR"] = str(conf_dir)
    install(rec)  # imports sparkmagic, which reads SPARKMAGIC_CONF_DIR once: after setting it
    install_arrow()  # %%sql -o & co. as Arrow when the endpoint is labwork's gateway
    record_launch(rest)
    sys.argv = [module, *rest]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
