"""Output folders of long jobs: refuse to clobber results, resume unfinished work."""

from __future__ import annotations

import shutil
from pathlib import Path

from ..errors import MicroforgeError

PARTS_DIR = ".parts"  # per-unit results of an unfinished job; the job is done when the manifest exists
DONE_MARKER = "manifest.csv"
OWN_MARKERS = (DONE_MARKER, PARTS_DIR, "properties.json")


def prepare_output_dir(
    out: str | Path, overwrite: bool, done_marker: str = DONE_MARKER, own_markers: tuple[str, ...] = OWN_MARKERS
) -> bool:
    """Make ``out`` ready for a result-writing job; return ``True`` when resuming unfinished work.

    * missing or empty: created, fresh start;
    * finished results (``done_marker``, by default ``manifest.csv``): refused unless ``overwrite``;
    * unfinished results (``.parts/`` without a manifest): resumed, or cleared with ``overwrite``;
    * anything else in it: refused always. ``overwrite`` only ever deletes folders that hold
      microforge's own markers, never an arbitrary folder.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise MicroforgeError(f"{out}: exists and is not a folder")
    if not out.exists() or not any(out.iterdir()):
        out.mkdir(parents=True, exist_ok=True)
        return False
    ours = any((out / m).exists() for m in (done_marker, *own_markers))
    if not ours:
        raise MicroforgeError(f"{out}: folder is not empty and holds no microforge results; choose an empty or new folder")
    if overwrite:
        shutil.rmtree(out)
        out.mkdir(parents=True)
        return False
    if (out / done_marker).exists():
        raise MicroforgeError(f"{out}: already holds results; pass --overwrite to replace them")
    return (out / PARTS_DIR).is_dir()
