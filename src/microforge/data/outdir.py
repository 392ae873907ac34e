"""Output folders and files: microforge writes only into a folder it created or one that is empty,
and ``--overwrite`` removes only what microforge wrote (docs/reliability.md, "Ownership").

A folder that a command claims gets an ownership file, ``.microforge-output.json``, which names the
command and lists the top-level entries it wrote. A non-empty folder without that file is never
written into. ``--overwrite`` removes the listed entries and nothing else: a file the user added
beside them stays.
"""

from __future__ import annotations

import json
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from ..errors import MicroforgeError
from ..io import write_json_atomic

PARTS_DIR = ".parts"  # per-unit results of an unfinished job; the job is done when the manifest exists
DONE_MARKER = "manifest.csv"
OWNER_FILE = ".microforge-output.json"


def read_owner(out: Path) -> dict | None:
    """The ownership record of ``out`` (``None``: the folder was not claimed by microforge)."""
    path = Path(out) / OWNER_FILE
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        raise MicroforgeError(
            f"{path}: unreadable ownership record; remove the folder by hand or choose another"
        ) from None
    if not isinstance(record, dict) or not isinstance(record.get("written"), list):
        raise MicroforgeError(f"{path}: not a microforge ownership record; remove the folder by hand or choose another")
    return record


def _write_owner(out: Path, record: dict) -> None:
    write_json_atomic(out / OWNER_FILE, record)


def _safe_name(out: Path, name: str) -> Path | None:
    """``out / name`` for a plain top-level name (the record is data read from disk: never let it
    reach outside ``out``)."""
    if not isinstance(name, str) or not name or name in (".", "..", OWNER_FILE) or "/" in name or "\\" in name:
        return None
    return out / name


def remove_owned(out: Path, record: dict) -> list[str]:
    """Delete the entries ``record`` lists (and an unfinished job's ``.parts/``); returns their names."""
    removed = []
    for name in [*record["written"], PARTS_DIR]:
        path = _safe_name(out, name)
        if path is None or not (path.exists() or path.is_symlink()):
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
        removed.append(name)
    return removed


def check_output_dir(out: str | Path, markers: tuple[str, ...] = ()) -> None:
    """The checks of :func:`prepare_output_dir` that need no writing: ``out`` is not a file, and a
    non-empty ``out`` was claimed by microforge (or holds one of ``markers``, files that only
    microforge writes). For jobs that read their inputs first."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise MicroforgeError(f"{out}: is a file, expected a folder")
    if out.is_dir() and any(out.iterdir()) and read_owner(out) is None and not any((out / m).exists() for m in markers):
        raise MicroforgeError(
            f"{out}: folder is not empty and was not written by microforge; choose an empty or new folder"
        )


def prepare_output_dir(
    out: str | Path,
    overwrite: bool,
    done_marker: str = DONE_MARKER,
    command: str = "microforge",
    outputs: tuple[str, ...] = (),
) -> bool:
    """Claim ``out`` for a result-writing job; return ``True`` when resuming unfinished work.

    * missing or empty: created and claimed, fresh start;
    * not empty and not claimed by microforge (no ownership file): refused, whatever ``overwrite``;
    * claimed, with finished results (``done_marker``): refused unless ``overwrite``, which removes
      the entries the ownership file lists, and nothing else;
    * claimed, unfinished (``.parts/``): resumed.

    ``outputs`` are the top-level names the job will write; they are recorded at once, so an
    interrupted job's files are known too. :func:`record_outputs` adds the rest when it finishes.
    """
    out = Path(out)
    check_output_dir(out)
    if not out.exists() or not any(out.iterdir()):
        out.mkdir(parents=True, exist_ok=True)
        _write_owner(out, {"command": command, "written": list(outputs), "foreign": []})
        return False
    record = read_owner(out)
    assert record is not None  # check_output_dir refused the folder otherwise
    if overwrite:
        remove_owned(out, record)
        foreign = sorted(p.name for p in out.iterdir() if p.name != OWNER_FILE)  # the user's own files: never listed
        _write_owner(out, {"command": command, "written": list(outputs), "foreign": foreign})
        return False
    if (out / done_marker).exists():
        raise MicroforgeError(f"{out}: already holds results; pass --overwrite to replace them")
    _write_owner(out, {**record, "written": sorted(set(record["written"]) | set(outputs))})
    return (out / PARTS_DIR).is_dir()


def record_outputs(out: str | Path) -> None:
    """Add every top-level entry of a claimed ``out`` that was not there when it was claimed to
    its ownership file: what the finished job wrote."""
    out = Path(out)
    record = read_owner(out)
    if record is None:
        return
    foreign = set(record.get("foreign", []))
    now = {p.name for p in out.iterdir() if p.name not in (OWNER_FILE, OWNER_FILE + ".tmp")} - foreign
    _write_owner(out, {**record, "written": sorted(set(record["written"]) | now)})


@contextmanager
def cleaned_on_failure(out: str | Path, fresh: bool) -> Iterator[None]:
    """Run a job that writes into the claimed ``out``; if it fails and ``fresh`` (it was not
    resuming), remove what it wrote, and ``out`` itself when nothing else is left in it."""
    out = Path(out)
    try:
        yield
    except MicroforgeError:  # bad input; an interrupted job (Ctrl-C, a kill) keeps its parts for resuming
        if fresh and out.is_dir():
            record = read_owner(out)
            if record is not None:
                record_outputs(out)
                remove_owned(out, read_owner(out) or record)
                if {p.name for p in out.iterdir()} <= {OWNER_FILE}:
                    shutil.rmtree(out)
        raise


def check_output_file(out: str | Path, overwrite: bool, suffixes: tuple[str, ...]) -> Path:
    """A single-file output: ``out`` must end in one of ``suffixes``, must not be a folder, and an
    existing file is replaced only with ``overwrite``. Its parent folder is created."""
    out = Path(out)
    if out.is_dir():
        raise MicroforgeError(f"{out}: is a folder; give a file name ending in {' or '.join(suffixes)}")
    if out.suffix.lower() not in suffixes:
        raise MicroforgeError(
            f"{out}: unsupported file type {out.suffix or '(none)'}; give a file name ending in {' or '.join(suffixes)}"
        )
    if out.exists() and not overwrite:
        raise MicroforgeError(f"{out}: already exists; pass --overwrite to replace it")
    out.parent.mkdir(parents=True, exist_ok=True)
    return out


RUN_MARKERS = ("run_config.json", ".done")  # what every trainer writes first into its run folder


def check_run_folder(out: str | Path) -> bool:
    """A training run folder: ``True`` when it holds a started run (to be resumed), ``False`` when
    it is new or empty. A non-empty folder that no microforge trainer started (no ownership
    record, no ``run_config.json``) is refused: a trainer deletes its own ``checkpoints/`` at the
    end, and must never do so in someone else's folder."""
    out = Path(out)
    check_output_dir(out, RUN_MARKERS)
    return out.is_dir() and any(p.name != OWNER_FILE for p in out.iterdir())


def claim_run_folder(out: str | Path, command: str) -> None:
    """Create ``out`` and give it an ownership record naming ``command``, unless it has one."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if read_owner(out) is None:
        _write_owner(out, {"command": command, "written": [], "foreign": []})
