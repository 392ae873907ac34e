"""The thread count: the cores free now, or the user's choice."""

import os
import subprocess
import sys
import time

import pytest

from microforge.errors import MicroforgeError
from microforge.threads import choose_threads, idle_cores


def test_manual_thread_count_wins_and_is_checked(monkeypatch):
    monkeypatch.setenv("MICROFORGE_THREADS", "3")
    assert choose_threads() == 3
    for bad in ("0", "-1", "two", ""):
        monkeypatch.setenv("MICROFORGE_THREADS", bad)
        with pytest.raises(MicroforgeError, match="MICROFORGE_THREADS must be a whole number"):
            choose_threads()


def test_busy_cores_are_left_to_their_owners(monkeypatch):
    monkeypatch.delenv("MICROFORGE_THREADS", raising=False)
    cores = os.cpu_count() or 1
    assert 0.0 <= idle_cores() <= cores + 1e-6
    loops = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(cores)]
    try:
        time.sleep(0.5)
        assert idle_cores(0.3) < 0.75 * cores  # every core has a busy loop beside this test
        assert choose_threads() < cores or cores == 1
    finally:
        for p in loops:
            p.kill()
