"""The scale bench's plumbing: memory of child processes is counted, the table compares a step with its
reference, bad sizes are refused, and the harness knows the opt-in scale runs."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.memory import GIB, MemorySampler, tree_rss_bytes
from bench.scale import Step, parse_args, table


def test_rss_of_a_child_process_is_counted() -> None:
    before = tree_rss_bytes()
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; b = bytearray(300 * 2**20); b[::4096] = b'x' * len(b[::4096]); "
         "print('ready', flush=True); time.sleep(30)"],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert child.stdout.readline().strip() == "ready"
        with MemorySampler(interval=0.05) as sampler:
            began = time.time()
            time.sleep(0.3)
            peak = sampler.peak(began, time.time())
        assert peak - before > 250 * 2**20  # the child's 300 MiB, touched page by page
    finally:
        child.kill()
        child.wait()


def test_table_gives_each_step_its_reference_ratio() -> None:
    steps = [
        Step("ingest", "cycle", 30.0, 1_000_000, 2.0, reference="ref ingest"),
        Step("ref ingest", "reference", 10.0, 1_000_000, 1.0),
        Step("export", "cycle", 1.0, 50, 0.5),
    ]
    lines = table(steps).splitlines()
    assert "| ingest | cycle | 30.0 | 1,000,000 | 33,333 | 2.00 | 10.0 | 100,000 | 1.00 | 3.00x |" in lines
    assert lines[-1].startswith("| export | cycle | 1.0 | 50 | 50 | 0.50 |")
    assert Step("x", "cycle", 0.0, 5, 0.0).rows_per_s == 0.0
    assert GIB == 2**30


def test_bad_sizes_are_refused(capsys) -> None:
    with pytest.raises(SystemExit):
        parse_args(["--users", "0"])
    assert "--users must be at least 1, got 0" in capsys.readouterr().err
    options = parse_args(["--users", "2000", "--sample-users", "300"])
    assert options.users == 2000 and options.sample_users == 300 and options.home.name == "scale_home_2000"


def test_harness_knows_the_opt_in_scale_runs() -> None:
    from bench.run_all import BENCHMARKS, SCALE_RUNS, run_all

    assert "scale" not in BENCHMARKS  # `make bench` stays within minutes
    assert parse_args(SCALE_RUNS["scale"]).users == 20_000
    assert parse_args(SCALE_RUNS["scale_full"]).users == 1_000_000
    with pytest.raises(SystemExit, match="unknown benchmark 'nope'"):
        run_all(["nope"])


def test_harness_runs_every_benchmark_script() -> None:
    """Every bench script that writes a result is in `make bench` (the scale run through its opt-in names)."""
    from bench.run_all import BENCHMARKS

    bench_dir = Path(__file__).resolve().parent.parent / "bench"
    writers = {p.stem for p in bench_dir.glob("*.py") if "write_result(" in p.read_text() and p.stem != "common"}
    assert writers - {"scale"} == set(BENCHMARKS)
