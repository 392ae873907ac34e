"""`import microforge` exposes the public API, lazily."""

import subprocess
import sys

import microforge


def test_public_names_resolve_to_their_modules():
    from microforge.characterize.descriptors import compare_sets, describe
    from microforge.errors import MicroforgeError
    from microforge.pipelines.registry import load_pipeline
    from microforge.pipelines.tim3 import TiM3Pipeline

    assert microforge.TiM3Pipeline is TiM3Pipeline and microforge.load_pipeline is load_pipeline
    assert microforge.describe is describe and microforge.compare_sets is compare_sets
    assert microforge.MicroforgeError is MicroforgeError
    assert set(dir(microforge)) >= {"TiM3Pipeline", "load_pipeline", "describe", "compare_sets", "MicroforgeError"}


def test_import_is_light_and_unknown_names_fail():
    code = "import sys, microforge; print('torch' in sys.modules, 'diffusers' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split() == [
        "False",
        "False",
    ]
    try:
        microforge.no_such_name
    except AttributeError as exc:
        assert "no_such_name" in str(exc)
    else:
        raise AssertionError("an unknown name must raise AttributeError")


def test_the_command_line_loads_no_numeric_library_before_it_sets_the_threads():
    # cli.main() puts the thread count in OMP_NUM_THREADS, which an OpenMP runtime reads once, when
    # the first library that uses it loads: numpy or torch imported with the cli module would fix
    # the count first (a resumed training then no longer reproduced an uninterrupted one)
    code = "import sys, microforge.cli; print('numpy' in sys.modules, 'torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split() == [
        "False",
        "False",
    ]


def test_load_pipeline_reads_bundled_names():
    pipe = microforge.load_pipeline("bundled:ti-sem-tiny")
    assert isinstance(pipe, microforge.TiM3Pipeline) and pipe.cfg.modality == "SEM"
