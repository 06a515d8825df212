"""Notebook preview cost: a cached second preview and 4 concurrent previews, against one render.

    .venv/bin/python bench/preview.py [--mb 20] [--cells 200]

Writes a notebook of about `mb` MB (text, HTML tables and PNG outputs spread over `cells` cells)
into a temporary project, then measures in this process, with labwork's preview cache:

* one render (the baseline: wall time and CPU time);
* a second preview of the unchanged file (served from the cache);
* 4 previews at once of the file, on a fresh cache (one render, three waiters);
* 4 renders at once without the cache (what each request cost before), for comparison.

Ratios are to the baseline measured in the same run.
"""
from __future__ import annotations

import argparse
import base64
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def make_notebook(path: Path, mb: float, cells: int) -> None:
    import nbformat

    per_cell = int(mb * 1e6 / cells)
    png = base64.b64encode(os.urandom(per_cell // 3)).decode()  # not a real picture: size is what counts
    nb = nbformat.v4.new_notebook()
    for i in range(cells):
        nb.cells.append(nbformat.v4.new_markdown_cell(f"## Step {i}\n\nSome *text* with `code`."))
        cell = nbformat.v4.new_code_cell(f"show({i})")
        rows = "".join(f"<tr><td>{r}</td><td>{r * i}</td></tr>" for r in range(per_cell // 120))
        cell.outputs = [
            nbformat.v4.new_output("stream", name="stdout", text="line of output\n" * (per_cell // 60)),
            nbformat.v4.new_output("display_data", data={"text/html": f"<table>{rows}</table>",
                                                         "text/plain": "table"}),
            nbformat.v4.new_output("display_data", data={"image/png": png, "text/plain": "<Figure>"}),
        ]
        nb.cells.append(cell)
    nbformat.write(nb, path)


def timed(fn) -> tuple[float, float]:  # noqa: ANN001
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mb", type=float, default=20)
    ap.add_argument("--cells", type=int, default=200)
    args = ap.parse_args()

    from labwork.notebooks.preview import render_preview
    from labwork.notebooks.preview_cache import PreviewCache
    from labwork.project import init_project

    with tempfile.TemporaryDirectory() as tmp:
        root = init_project(Path(tmp) / "bench", "bench").root
        nb = root / "big.ipynb"
        make_notebook(nb, args.mb, args.cells)
        size = nb.stat().st_size / 1e6

        cache = PreviewCache()
        one_wall, one_cpu = timed(lambda: cache.get(nb))
        again_wall, again_cpu = timed(lambda: cache.get(nb))

        fresh = PreviewCache()
        with ThreadPoolExecutor(4) as pool:
            four_wall, four_cpu = timed(lambda: list(pool.map(lambda _: fresh.get(nb), range(4))))
        with ThreadPoolExecutor(4) as pool:
            raw_wall, raw_cpu = timed(lambda: list(pool.map(lambda _: render_preview(nb), range(4))))

    print(f"notebook: {size:.1f} MB, {args.cells} code cells")
    print(f"baseline one render:            {one_wall:7.2f} s wall, {one_cpu:7.2f} s CPU")
    print(f"cached second preview / first:  {again_wall / one_wall:9.5f} wall, "
          f"{again_cpu / max(one_cpu, 1e-9):9.5f} CPU")
    print(f"4 concurrent (cache) / one:     {four_wall / one_wall:9.2f} wall, {four_cpu / one_cpu:9.2f} CPU "
          f"({fresh.renders} render)")
    print(f"4 concurrent (no cache) / one:  {raw_wall / one_wall:9.2f} wall, {raw_cpu / one_cpu:9.2f} CPU")


if __name__ == "__main__":
    main()
