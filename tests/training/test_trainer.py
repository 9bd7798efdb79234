import csv
import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from qmra.data import DavisDataset, SyntheticConfig, SyntheticVideo
from qmra.errors import QmraError
from qmra.model import LossParts, ModelConfig
from qmra.model.checkpoint import load_model
from qmra.training import DataSpec, TrainConfig, Trainer
from qmra.training import trainer as trainer_module
from qmra.training.distributed import DistributedContext
from tests.tiny import TINY, exported_video

CPU = DistributedContext(0, 1, torch.device("cpu"))


def _trainer(run_dir, steps, resume=False, config=TINY, **overrides):
    settings = {"steps": steps, "batch_size": 2, "size": 48, "lr": 1e-3, "save_every": 1, "workers": 0, **overrides}
    return Trainer(config, TrainConfig(**settings), [DataSpec.parse("synthetic:3")], run_dir, CPU, resume=resume)


def test_smoke_training_writes_checkpoints_metrics_and_plot(tmp_path):
    trainer = Trainer(TINY, TrainConfig(steps=3, batch_size=2, size=48, save_every=2, val_every=3, workers=0),
                      [DataSpec.parse("synthetic:3@2"), DataSpec.parse("synthetic:2")], tmp_path, CPU,
                      val=DataSpec.parse("synthetic:1"))
    summary = trainer.run()
    assert summary["step"] == 3 and summary["stopped_by"] is None and 0 <= summary["best_jf"] <= 1
    for name in ("last", "best"):
        model, metadata = load_model(tmp_path / f"{name}.safetensors")
        assert model.config == TINY and metadata["step"] == 3
    record = json.loads((tmp_path / "last.json").read_text())
    assert record["step"] == 3 and record["train"]["batch_size"] == 2 and record["data"] == ["synthetic:3@2", "synthetic:2"]
    rows = (tmp_path / "metrics.csv").read_text().splitlines()
    assert rows[0].startswith("step,loss,track,mask,refined,lr") and len(rows) == 4 and rows[3].split(",")[7] != ""
    assert (tmp_path / "curves.png").stat().st_size > 1000


def test_an_export_of_ones_own_videos_trains_and_validates_and_other_val_kinds_are_refused_at_once(tmp_path):
    video = SyntheticVideo(SyntheticConfig(height=48, width=64, num_frames=6, num_objects=2, seed=3))
    spec = DataSpec.parse(f"cocovid:{exported_video(tmp_path, video, indices=[0, 1, 2, 3, 4, 5])}")
    settings = TrainConfig(steps=1, batch_size=2, size=48, val_every=1, workers=0)
    summary = Trainer(TINY, settings, [spec], tmp_path / "run", CPU, val=spec).run()
    assert 0 <= summary["best_jf"] <= 1
    (written,) = DavisDataset(tmp_path / "run" / "val-cocovid")
    assert written.name == "shot" and written.num_frames == 6
    assert np.array_equal(written.labels(4), video.labels(4)) and np.array_equal(written.image(4), video.image(4))
    with pytest.raises(QmraError, match="--val takes davis:PATH\\[:sequences\\], synthetic\\[:N\\], cocovid:DATASET or youtube-vis"):
        Trainer(TINY, settings, [spec], tmp_path / "other", CPU, val=DataSpec.parse("coco:a.json:images"))


def test_resume_continues_exactly(tmp_path):
    straight = _trainer(tmp_path / "a", steps=4)
    straight.run()
    first = _trainer(tmp_path / "b", steps=2)
    first.run()
    resumed = _trainer(tmp_path / "b", steps=4, resume=True)
    assert resumed.step == 2
    resumed.run()
    for key, value in straight.model.state_dict().items():
        assert torch.allclose(value, resumed.model.state_dict()[key], atol=1e-6), key
    assert (tmp_path / "b" / "metrics.csv").read_text().count("\n") == 5  # header + 4 steps


def test_each_step_records_how_long_it_waited_for_its_clips(tmp_path):
    trainer = _trainer(tmp_path, steps=3)
    clip = trainer.clips.__class__.__getitem__

    def slow(self, number):  # workers=0: the clips are made in the step's own wait
        time.sleep(0.05)
        return clip(self, number)

    trainer.clips.__class__.__getitem__ = slow
    try:
        trainer.run()
    finally:
        trainer.clips.__class__.__getitem__ = clip
    with (tmp_path / "metrics.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [float(r["data_wait_s"]) >= 0.1 for r in rows] == [True] * 3  # 2 clips of 50 ms a step
    assert all(float(r["data_wait_s"]) < 1 / float(r["steps_per_s"]) for r in rows)


def test_a_run_resumed_from_an_older_metrics_file_keeps_its_columns(tmp_path):
    _trainer(tmp_path, steps=1).run()
    path = tmp_path / "metrics.csv"
    lines = path.read_text().splitlines()
    old = ",".join(lines[0].split(",")[:-1])  # the columns before data_wait_s
    path.write_text("\n".join([old, *(",".join(line.split(",")[:-1]) for line in lines[1:])]) + "\n")
    _trainer(tmp_path, steps=2, resume=True).run()
    with path.open() as handle:
        rows = list(csv.DictReader(handle))
    assert [r["step"] for r in rows] == ["1", "2"] and all(None not in r for r in rows)


def test_sigterm_saves_and_stops_cleanly(tmp_path):
    trainer = _trainer(tmp_path, steps=50, save_every=100)
    step = trainer._train_step

    def step_then_signal(batches, lr):
        parts = step(batches, lr)
        if trainer.step == 1:  # during the second step
            signal.raise_signal(signal.SIGTERM)
        return parts

    trainer._train_step = step_then_signal
    summary = trainer.run()
    assert summary == {"step": 2, "stopped_by": "SIGTERM", "best_jf": -1.0}
    assert json.loads((tmp_path / "last.json").read_text())["step"] == 2
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handlers restored


def test_a_nan_loss_stops_with_the_last_good_checkpoint_intact(tmp_path):
    trainer = _trainer(tmp_path, steps=5)
    real_loss = trainer.loss

    def poisoned(output, mask, box_map):
        parts = real_loss(output, mask, box_map)
        if trainer.step >= 2:
            return LossParts(parts.total * float("nan"), parts.track, parts.mask, parts.refined)
        return parts

    trainer.loss = poisoned
    with pytest.raises(QmraError, match="the loss became nan at step 3"):
        trainer.run()
    assert json.loads((tmp_path / "last.json").read_text())["step"] == 2
    load_model(tmp_path / "last.safetensors")


def test_losses_are_read_from_the_device_every_few_steps_and_logged_step_by_step(tmp_path, monkeypatch):
    monkeypatch.setattr(trainer_module, "LOSS_READS_EVERY", 4)
    trainer = _trainer(tmp_path, steps=10, save_every=1000)
    computed, reads = [], []
    real_loss, settle = trainer.loss, trainer._settle

    def recorded(output, mask, box_map):
        parts = real_loss(output, mask, box_map)
        computed.append(float(parts.total.detach()))
        return parts

    def counted(pending, writer, bar):
        reads.append(len(pending))
        settle(pending, writer, bar)

    trainer.loss, trainer._settle = recorded, counted
    trainer.run()
    assert [n for n in reads if n] == [4, 4, 2]  # the last read at step 10: the run's end, due a checkpoint
    with (tmp_path / "metrics.csv").open() as handle:
        logged = [float(row["loss"]) for row in csv.DictReader(handle)]
    assert logged == pytest.approx(computed, rel=1e-5)


def test_a_nan_loss_read_late_names_its_step_and_nothing_is_saved_after_it(tmp_path):
    trainer = _trainer(tmp_path, steps=5, save_every=100)
    real_loss = trainer.loss

    def poisoned(output, mask, box_map):
        parts = real_loss(output, mask, box_map)
        return LossParts(parts.total * float("nan"), parts.track, parts.mask, parts.refined) if trainer.step == 2 else parts

    trainer.loss = poisoned
    with pytest.raises(QmraError, match="the loss became nan at step 3"):
        trainer.run()
    assert not (tmp_path / "last.safetensors").exists()
    with (tmp_path / "metrics.csv").open() as handle:
        assert [row["step"] for row in csv.DictReader(handle)] == ["1", "2"]  # the steps before it, logged


def test_runs_are_not_overwritten_and_architectures_not_mixed(tmp_path):
    _trainer(tmp_path, steps=1).run()
    with pytest.raises(QmraError, match="already holds a run: use --resume"):
        _trainer(tmp_path, steps=2)
    other = ModelConfig(**{**TINY.to_dict(), "variant": "no-crm"})
    with pytest.raises(QmraError, match="trained with another network than asked for \\(--variant full, not no-crm\\)"):
        _trainer(tmp_path, steps=2, resume=True, config=other)
    with pytest.raises(QmraError, match="nothing to resume"):
        _trainer(tmp_path / "empty", steps=2, resume=True)
    with pytest.raises(QmraError, match="another network than this run trains \\(--variant full, not no-crm\\)"):
        Trainer(other, TrainConfig(steps=1, batch_size=2, size=48, workers=0), [DataSpec.parse("synthetic:2")],
                tmp_path / "init", CPU, init=str(tmp_path / "last.safetensors"))


def test_two_processes_with_gloo(tmp_path):
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517",
               "-m", "qmra", "train", "--data", "synthetic:2", "--out", str(tmp_path), "--steps", "2", "--batch-size", "1",
               "--size", "32", "--backbone", "resnet18", "--decoder-channels", "16", "--workers", "0", "--quiet"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    record = json.loads((tmp_path / "last.json").read_text())
    assert record["step"] == 2 and record["world_size"] == 2


def test_a_time_budget_ends_the_run_and_decays_the_schedule_over_it(tmp_path):
    config = TrainConfig(steps=1000, lr=1.0, lr_schedule="cosine", time_budget=100.0)
    assert config.learning_rate(0, elapsed=0.0) == pytest.approx(1.0)
    assert config.learning_rate(0, elapsed=50.0) == pytest.approx(0.5)  # half the time: half-way down the cosine
    assert config.learning_rate(900, elapsed=10.0) < 0.03  # whichever clock is further along
    trainer = _trainer(tmp_path, steps=1000, save_every=1000, time_budget=0.5)
    summary = trainer.run()
    assert 1 <= summary["step"] < 1000 and summary["stopped_by"] is None
    assert json.loads((tmp_path / "last.json").read_text())["step"] == summary["step"]  # saved when the budget ran out
    with pytest.raises(QmraError, match="time-budget"):
        TrainConfig(time_budget=0)


def test_keep_every_leaves_the_earlier_steps_weights_to_choose_from(tmp_path):
    _trainer(tmp_path, steps=5, save_every=5, keep_every=2).run()
    kept = sorted(path.name for path in tmp_path.glob("step-*.safetensors"))
    assert kept == ["step-2.safetensors", "step-4.safetensors"]
    early, metadata = load_model(tmp_path / "step-2.safetensors")
    last, _ = load_model(tmp_path / "last.safetensors")
    assert metadata["step"] == 2
    assert any(not torch.equal(a, b) for a, b in zip(early.state_dict().values(), last.state_dict().values()))
    with pytest.raises(QmraError, match="keep-every"):
        TrainConfig(keep_every=-1)


def test_loose_boxes_grey_clips_and_gaps_reach_the_training_clips(tmp_path):
    trainer = _trainer(tmp_path, steps=1, loose_boxes=0.2)
    assert all(source.settings.loose_boxes == 0.2 for source in trainer.clips.sources)
    tight = _trainer(tmp_path / "tight", steps=1)
    assert all(source.settings.loose_boxes == 0.0 for source in tight.clips.sources)
    # A tenth of the clips greyscale unless told otherwise (--grey-clips).
    assert all(source.settings.grey_clips == 0.1 for source in tight.clips.sources)
    assert all(source.settings.grey_clips == 0 for source in _trainer(tmp_path / "colour", steps=1, grey_clips=0).clips.sources)
    with pytest.raises(QmraError, match="--grey-clips must be a share"):
        TrainConfig(grey_clips=1.5)
    with pytest.raises(QmraError, match="--loose-boxes must be a share"):
        TrainConfig(loose_boxes=2.0)
    # Gaps between a video clip's frames: the paper's 5 unless told otherwise (--max-gap).
    assert all(source.settings.max_gap == 5 for source in tight.clips.sources)
    assert all(source.settings.max_gap == 20 for source in _trainer(tmp_path / "far", steps=1, max_gap=20).clips.sources)
    with pytest.raises(QmraError, match="max-gap must be at least 1"):
        TrainConfig(max_gap=0)


def test_workers_default_to_the_cores_a_gpu_leaves_and_one_on_a_cpu(monkeypatch):
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    monkeypatch.setattr(trainer_module.os, "sched_getaffinity", lambda pid: set(range(16)))
    gpu = torch.device("cuda", 0)
    assert trainer_module.default_workers(gpu) == 14 and trainer_module.default_workers(CPU.device) == 1
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")  # four GPUs' processes share the machine's cores
    assert trainer_module.default_workers(gpu) == 3
    monkeypatch.setattr(trainer_module.os, "sched_getaffinity", lambda pid: {0, 1})
    assert trainer_module.default_workers(gpu) == 2


def test_a_run_records_the_workers_it_used(tmp_path):
    trainer = Trainer(TINY, TrainConfig(steps=1, batch_size=2, size=48), [DataSpec.parse("synthetic:2")], tmp_path, CPU)
    assert trainer.config.workers == 1
    trainer.run()
    assert json.loads((tmp_path / "last.json").read_text())["train"]["workers"] == 1
