"""How many CPU threads PyTorch uses: as many as the machine has free, so that a busy machine
slows microforge down gracefully instead of collapsing.

PyTorch's default is one thread per core. When another job already keeps those cores busy, its
OpenMP threads wait on each other at every parallel region and a command can run 20-60 times
slower (docs/reliability.md, "Busy machines"). microforge measures the cores that are idle right
now (Linux ``/proc/stat`` over 0.1 s; elsewhere the load average) and takes that many, at least
one. ``MICROFORGE_THREADS=N`` sets the count by hand; so does ``OMP_NUM_THREADS``, which is left
alone when set.
"""

from __future__ import annotations

import os
import time

from .errors import MicroforgeError


def _cpu_times() -> tuple[float, float] | None:
    """(idle, total) jiffies of all CPUs, or None off Linux."""
    try:
        with open("/proc/stat") as fh:
            fields = [float(x) for x in fh.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)  # idle + iowait
    return idle, sum(fields[:8])


def idle_cores(window_s: float = 0.1) -> float:
    """Cores idle over the last ``window_s`` seconds (0 .. cpu_count)."""
    cores = os.cpu_count() or 1
    first = _cpu_times()
    if first is not None:
        time.sleep(window_s)
        second = _cpu_times()
        if second is not None and second[1] > first[1]:
            return cores * (second[0] - first[0]) / (second[1] - first[1])
    try:
        return max(0.0, cores - os.getloadavg()[0])
    except OSError:
        return float(cores)


def choose_threads() -> int:
    """The thread count for this process: MICROFORGE_THREADS, or the cores idle now (at least 1)."""
    manual = os.environ.get("MICROFORGE_THREADS")
    if manual is not None:
        if not manual.strip().isdigit() or int(manual) < 1:
            raise MicroforgeError(f"MICROFORGE_THREADS must be a whole number of at least 1, got {manual!r}")
        return int(manual)
    return max(1, min(os.cpu_count() or 1, int(idle_cores() + 0.5)))


def configure_threads() -> int | None:
    """Give PyTorch :func:`choose_threads` threads, unless OMP_NUM_THREADS is already set (then
    PyTorch follows it). Call before torch is imported: the count goes to OMP_NUM_THREADS, which
    torch reads when it loads, so a command that never needs torch does not pay for importing it.
    Returns the count set, or None."""
    if "OMP_NUM_THREADS" in os.environ and "MICROFORGE_THREADS" not in os.environ:
        return None
    n = choose_threads()
    os.environ["OMP_NUM_THREADS"] = str(n)
    return n
