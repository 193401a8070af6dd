"""Write each notebook's ``.ipynb`` from its jupytext ``.py``, executed, with its outputs.

The ``NN_name.py`` files (jupytext percent format) are what people edit and review; the
``NN_name.ipynb`` next to each is generated from it and committed with the outputs of a full run,
so that its figures show on GitHub and on the documentation site (which renders the stored
outputs and executes nothing). ``tests/test_notebooks.py`` checks that every ``.ipynb`` holds the
cells of its ``.py`` and runs each ``.py`` in its small setting.

    python notebooks/execute.py             # every notebook, full setting: what is committed
    python notebooks/execute.py 02          # the notebooks whose names start with 02
    python notebooks/execute.py 02 --small  # SVG_PYRO_NB_SMALL=1, into notebooks/runs/small/

``make notebooks`` runs the first line (several minutes on a CPU: 01 and 03 train). The full
setting works in ``notebooks/`` (run folders under ``notebooks/runs/``, ignored by git; 01 trains
afresh at every run, to show its training; 03 resumes its finished training runs there instead
of repeating them: delete ``notebooks/runs/nb03`` to train them again); the small setting works
in ``notebooks/runs/small/`` and writes its ``.ipynb`` there, never over the committed one.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import jupytext
import nbformat
from nbclient import NotebookClient

HERE = Path(__file__).resolve().parent
SMALL_SWITCH = "SVG_PYRO_NB_SMALL"
KERNELSPEC = {"display_name": "Python 3", "language": "python", "name": "python3"}


def sources() -> list[Path]:
    """The notebooks' ``.py`` files, in order: ``notebooks/NN_name.py``."""
    return sorted(HERE.glob("[0-9][0-9]_*.py"))


def read(py: str | Path) -> nbformat.NotebookNode:
    """The notebook of ``py`` without outputs, with stable cell ids (``NN_name-03``) so that
    regenerating it changes no id."""
    py = Path(py)
    nb = jupytext.read(py)
    nb.metadata = {"kernelspec": dict(KERNELSPEC), "language_info": {"name": "python"}}
    for i, cell in enumerate(nb.cells):
        cell.metadata = {}
        cell["id"] = f"{py.stem}-{i:02d}"
    return nb


def execute(nb: nbformat.NotebookNode, cwd: str | Path, small: bool, timeout: int = 3600) -> None:
    """Run ``nb`` top to bottom in a fresh kernel started in ``cwd`` (outputs stored in place),
    with ``SVG_PYRO_NB_SMALL`` set to 1 or 0; raises on the first failing cell."""
    env = {
        SMALL_SWITCH: "1" if small else "0",
        "MPLBACKEND": "module://matplotlib_inline.backend_inline",
    }
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # the kernel inherits this process's environment
    try:
        NotebookClient(
            nb,
            timeout=timeout,
            kernel_name="python3",
            record_timing=False,
            resources={"metadata": {"path": str(cwd)}},
        ).execute()
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="prefixes of the notebooks to run (default all)")
    parser.add_argument("--small", action="store_true", help=f"{SMALL_SWITCH}=1: a smoke run")
    args = parser.parse_args(argv)
    chosen = [p for p in sources() if not args.names or p.stem.startswith(tuple(args.names))]
    if not chosen:
        parser.error(f"no notebook starts with {args.names}")
    work = HERE / "runs" / "small" if args.small else HERE
    work.mkdir(parents=True, exist_ok=True)
    for py in chosen:
        nb = read(py)
        print(f"running {py.name} ({'small' if args.small else 'full'} setting)", flush=True)
        execute(nb, work, args.small)
        out = work / py.with_suffix(".ipynb").name
        nbformat.validate(nb)
        nbformat.write(nb, out)
        print(f"  -> {out}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
