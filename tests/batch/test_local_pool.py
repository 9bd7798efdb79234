"""How many local workers, and how many threads each."""

from __future__ import annotations

from qmra.batch.local_pool import WORKER_MEMORY, cpu_workers, split_threads


def test_cpu_workers_are_one_per_core_as_memory_allows():
    assert cpu_workers(8, None) == 8 and cpu_workers(8, int(3.5 * WORKER_MEMORY)) == 3 and cpu_workers(4, 0) == 1
    assert split_threads(2, 2) == 1 and split_threads(16, 3) == 5 and split_threads(2, 8) == 1


def test_the_cores_are_split_between_every_lane_of_every_worker(monkeypatch, tmp_path):
    import argparse
    from pathlib import Path

    import qmra.inference.threads
    from qmra.commands.batch import _pool

    monkeypatch.setattr(qmra.inference.threads, "usable_cores", lambda: 16)
    args = argparse.Namespace(ray=None, workers=2, device="cpu", videos_per_worker=4, threads=None)
    pool = _pool(args, None, 20, Path(tmp_path / "weights.safetensors"))
    assert (pool.processes, pool.lanes, pool.args.threads) == (2, 4, 2)  # 2 workers x 4 lanes x 2 threads: 16 cores
    args.threads = 3
    assert _pool(args, None, 20, Path(tmp_path / "weights.safetensors")).args.threads == 3  # as asked
