"""The training loop: the paper's recipe (Adam, lr 1e-5, batch 16, 2 memory frames + 1 query, CE +
0.1 dice on Bq, Sq, Sr) with gradient accumulation, bf16 on CUDA, DistributedDataParallel, safe
checkpoints, exact resume, and validation through the real inference path."""

from __future__ import annotations

import csv
import math
import os
import shutil
import signal
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, Sequence

import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from qmra.data import ClipSettings
from qmra.errors import QmraError
from qmra.model import QMRA, ModelConfig, QMRALoss
from qmra.model.checkpoint import load_model, load_weights_into, save_checkpoint
from qmra.model.config import config_differences
from qmra.model.pretrained import resolve_backbone_weights
from qmra.training.checkpoints import load_run_checkpoint, save_run_checkpoint
from qmra.training.distributed import DistributedContext
from qmra.training.config import TrainConfig
from qmra.training.encoders import freeze_encoders, parameter_groups
from qmra.training.mixing import MixedClips, SampleNumbers
from qmra.training.plot import plot_curves
from qmra.training.tensorboard import TensorBoard
from qmra.training.specs import DataSpec

#: Steps whose losses stay on the device before they are read, all in one transfer: reading them at
#: every step would make the host wait for the device there, unable to queue the next step meanwhile.
#: A loss that is not finite is so found up to this many steps late, before anything is saved.
LOSS_READS_EVERY = 20
#: ``data_wait_s``: seconds the step waited for its clips (a step that mostly waits is bound by the
#: DataLoader's workers, not by the device).
METRIC_FIELDS = ("step", "loss", "track", "mask", "refined", "lr", "steps_per_s", "val_jf", "val_j", "val_f", "data_wait_s")


def default_workers(device: torch.device) -> int:
    """DataLoader workers where ``--workers`` is not given: on a GPU, every core this process may use
    but 2 (the training process and its pinning thread), shared by the training processes of this
    machine (torchrun's LOCAL_WORLD_SIZE); on a CPU, 1."""
    if device.type != "cuda":
        return 1
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 4)
    return max(2, (cores - 2) // int(os.environ.get("LOCAL_WORLD_SIZE", "1")))


class Trainer:
    def __init__(self, model_config: ModelConfig, config: TrainConfig, data: Sequence[DataSpec], run_dir: str | Path,
                 context: DistributedContext, val: DataSpec | None = None, backbone_weights: str | None = None,
                 init: str | None = None, resume: bool = False, progress: bool = False) -> None:
        self.config = config if config.workers is not None else replace(config, workers=default_workers(context.device))
        self.context = context
        self.run_dir = Path(run_dir)
        self.data = list(data)
        self.val = val
        self.progress = progress
        if not self.data:
            raise QmraError("give at least one --data source")
        if val is not None and val.kind not in VALIDATION_KINDS:
            raise QmraError(f"--val takes davis:PATH[:sequences], synthetic[:N], cocovid:DATASET or youtube-vis:..., "
                             f"got {val.text!r}")
        if (self.run_dir / "last.json").exists() and not resume:
            raise QmraError(f"{self.run_dir} already holds a run: use --resume to continue it, or another --out")
        torch.manual_seed(config.seed)
        self.model = QMRA(model_config)  # BatchNorm fixed or trained as model_config.freeze_batchnorm says
        if backbone_weights:
            report = self.model.load_backbone_weights(resolve_backbone_weights(backbone_weights, model_config.backbone))
            context.log(f"backbone: {report}")
        #: The inference settings ``init``'s weights recommend (the working size, adaptation, ...),
        #: which this run's checkpoints recommend too: chosen for those weights, not re-chosen here.
        self.inherited_inference: dict[str, Any] | None = None
        if init:
            initial, metadata = load_model(init)
            if isinstance(metadata.get("inference"), dict):
                self.inherited_inference = {"from": str(init), "settings": metadata["inference"]}
            differences = config_differences(replace(initial.config, freeze_batchnorm=model_config.freeze_batchnorm),
                                             model_config)
            if differences:
                raise QmraError(f"--init {init} is another network than this run trains ({differences}); leave out "
                                "the model options that differ: a run from a checkpoint trains its network")
            load_weights_into(self.model, initial.state_dict(), init)
        self.model.to(context.device).train()
        fixed = freeze_encoders(self.model, config.frozen_backbone)
        if fixed:
            context.log(f"backbone: {fixed:,} encoder parameters fixed ({config.frozen_backbone})")
        encoder_lr = config.backbone_lr if config.backbone_lr is not None else (0.1 if backbone_weights else 1.0)
        self.optimizer = torch.optim.Adam(parameter_groups(self.model, encoder_lr), lr=config.lr)
        self.step = 0
        self.best_jf = -1.0
        if resume:
            state = load_run_checkpoint(self.run_dir, "last", self.model)
            self.optimizer.load_state_dict(state.optimizer)
            torch.set_rng_state(state.rng)
            self.step = state.step
            self.best_jf = float(state.record.get("best_jf", -1.0))
            self.inherited_inference = state.record.get("inherited_inference", self.inherited_inference)
            context.log(f"resuming {self.run_dir} at step {self.step}")
        self.network: torch.nn.Module = self.model
        if context.world_size > 1:
            ids = [context.device.index] if context.device.type == "cuda" else None
            self.network = DistributedDataParallel(self.model, device_ids=ids)
        self.loss = QMRALoss(config.dice_weight)
        settings = ClipSettings(size=(config.size, config.size), max_gap=config.max_gap, loose_boxes=config.loose_boxes,
                                grey_clips=config.grey_clips, blur_clips=config.blur_clips)
        sources = [spec.build(settings, config.seed + index) for index, spec in enumerate(self.data)]
        self.clips = MixedClips(sources, [spec.weight for spec in self.data], config.seed)
        self.clips.check([spec.text for spec in self.data])
        self.stop_reason: str | None = None
        self.elapsed = 0.0  # seconds of training in this process (the time budget's clock)
        self.calibrate_batchnorm = not model_config.freeze_batchnorm and config.bn_calibration_videos > 0
        self._calibrated_at = -1
        self._metric_fields: tuple[str, ...] | None = None  # metrics.csv's columns, read once

    # ------------------------------------------------------------------ loop

    def _loader(self) -> DataLoader:
        per_step = self.config.batch_size * self.config.accumulate * self.context.world_size
        sampler = SampleNumbers(self.step * per_step, self.context.rank, self.context.world_size)
        return DataLoader(self.clips, batch_size=self.config.batch_size, sampler=sampler, num_workers=self.config.workers,
                          persistent_workers=self.config.workers > 0, pin_memory=self.context.device.type == "cuda")

    def _request_stop(self, signum: int, _frame: object) -> None:
        self.stop_reason = signal.Signals(signum).name

    def run(self) -> dict[str, Any]:
        config, context = self.config, self.context
        previous = {s: signal.signal(s, self._request_stop) for s in (signal.SIGTERM, signal.SIGINT)}
        batches = iter(self._loader())
        writer = TensorBoard(self.run_dir) if context.is_main else None
        from tqdm import tqdm

        bar = tqdm(total=config.steps, initial=self.step, unit="step", disable=not (self.progress and context.is_main),
                   dynamic_ncols=True)
        last_time, last_step = time.perf_counter(), self.step
        pending: list[dict[str, Any]] = []  # steps whose losses are still on the device
        benchmark = torch.backends.cudnn.benchmark
        if context.device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # every training batch has the same shape; restored below
        try:
            while self.step < config.steps and not self._out_of_time() and not self._agreed_stop():
                lr = config.learning_rate(self.step, self.elapsed)
                parts, waited = self._train_step(batches, lr)
                self.step += 1
                now = time.perf_counter()
                self.elapsed += now - last_time
                rate = (self.step - last_step) / (now - last_time)
                pending.append({"step": self.step, **parts, "lr": lr, "steps_per_s": rate, "data_wait_s": waited})
                bar.update(1)
                if len(pending) >= LOSS_READS_EVERY or self._due():
                    self._settle(pending, writer, bar)
                last_time, last_step = time.perf_counter(), self.step  # validation and saving are not training time
            self._settle(pending, writer, bar)
            if self.stop_reason is not None and context.is_main:
                self._save("last")
                context.log(f"stopped by {self.stop_reason} at step {self.step}; continue with --resume")
            elif self._out_of_time() and context.is_main:
                context.log(f"time budget of {config.time_budget:g} s spent at step {self.step}")
        finally:
            torch.backends.cudnn.benchmark = benchmark
            bar.close()
            for s, handler in previous.items():
                signal.signal(s, handler)
            if writer is not None:
                writer.close()
        if context.is_main:
            self._plot()
        return {"step": self.step, "stopped_by": self.stop_reason, "best_jf": self.best_jf}

    def _due(self) -> dict[str, bool]:
        """What this step is due for (validation, a checkpoint, a kept copy); empty: nothing."""
        config, step = self.config, self.step
        due = {"validate": self.val is not None and step % config.val_every == 0,
               "save": step % config.save_every == 0 or step == config.steps or self._out_of_time(),
               "keep": bool(config.keep_every) and step % config.keep_every == 0}
        return {name: True for name, wanted in due.items() if wanted}

    def _settle(self, pending: list[dict[str, Any]], writer: "TensorBoard | None", bar) -> None:
        """Read the ``pending`` steps' losses from the device at once (the host waits for it here, not at
        every step), stop at the first that is not finite, log them, then validate, save and keep what
        the last step is due for."""
        if not pending:
            return
        names = [name for name, value in pending[0].items() if isinstance(value, torch.Tensor)]
        values = torch.stack([torch.stack([row[name] for name in names]) for row in pending]).float().cpu().tolist()
        rows = list(pending)
        pending.clear()
        for row, row_values in zip(rows, values):
            row.update(zip(names, row_values))
        good = next((i for i, row in enumerate(rows) if not math.isfinite(row["loss"])), len(rows))  # rows before a bad one
        last = rows[-1]
        due = self._due() if good == len(rows) and self.context.is_main else {}
        if due.get("validate"):
            last.update(self._validate())
        for row in rows[:good] if self.context.is_main else []:
            self._log(row, writer)
        if good < len(rows):
            raise QmraError(f"the loss became {rows[good]['loss']} at step {rows[good]['step']}: training stopped; the last good "
                            f"checkpoint is {self.run_dir / 'last.safetensors'} (lower --lr, or check the data)")
        if not self.context.is_main:
            return
        bar.set_postfix({name: f"{last[name]:.3f}" for name in names}, refresh=False)
        if due.get("save"):
            self._save("last")
        if due.get("keep"):
            self._keep()
        if "val_jf" in last and last["val_jf"] > self.best_jf:
            self.best_jf = last["val_jf"]
            self._save("best")
            self._save("last")

    def _out_of_time(self) -> bool:
        return self.config.time_budget is not None and self.elapsed >= self.config.time_budget

    def _agreed_stop(self) -> bool:
        """Whether to stop now; with several processes, all stop together if any was signalled."""
        stop = self.stop_reason is not None
        if self.context.world_size > 1:
            import torch.distributed as dist

            flag = torch.tensor([1.0 if stop else 0.0], device=self.context.device)
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
            stop = bool(flag.item())
            if stop and self.stop_reason is None:
                self.stop_reason = "a signal to another process"
        return stop

    def _train_step(self, batches, lr: float) -> tuple[dict[str, torch.Tensor], float]:
        """One optimizer step; returns the loss parts (on the device: reading them waits for it) and
        the seconds spent waiting for clips."""
        config, device = self.config, self.context.device
        self.optimizer.zero_grad(set_to_none=True)
        for group in self.optimizer.param_groups:
            group["lr"] = lr * group.get("lr_scale", 1.0)
        forcing = torch.Generator().manual_seed(config.seed * 1_000_003 + self.step)
        totals: dict[str, torch.Tensor] = {}
        waited = 0.0
        for micro in range(config.accumulate):
            asked = time.perf_counter()
            batch = next(batches)
            waited += time.perf_counter() - asked
            images = batch["images"].to(device, non_blocking=True)
            masks = batch["masks"].to(device, non_blocking=True)
            box_maps = batch["box_maps"].to(device, non_blocking=True)
            prior = box_maps[:, -1] if torch.rand((), generator=forcing).item() < config.teacher_forcing else None
            autocast = device.type == "cuda" and config.bf16
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
                output = self.network(images[:, :-1], box_maps[:, :-1], images[:, -1], query_prior=prior)
            parts = self.loss(output, masks[:, -1], box_maps[:, -1])
            (parts.total / config.accumulate).backward()
            for key, value in parts.detached().items():
                totals[key] = totals[key] + value / config.accumulate if key in totals else value / config.accumulate
        self.optimizer.step()
        return totals, waited

    # ------------------------------------------------------------------ outputs

    def _record(self) -> dict[str, Any]:
        return {"train": asdict(self.config), "data": [s.text for s in self.data], "val": self.val.text if self.val else None,
                "best_jf": self.best_jf, "world_size": self.context.world_size,
                **({"inherited_inference": self.inherited_inference} if self.inherited_inference else {})}

    def _inference_settings(self):
        from qmra.inference.settings import InferenceSettings

        return InferenceSettings(resolution=self.config.val_resolution)

    def _calibration_videos(self) -> list:
        """Up to ``bn_calibration_videos`` training videos, taken in turn from each video source: real
        videos only when there are any (statistics of procedural clips hurt real video: re-estimated
        with half of them synthetic, validation J&F fell from 25.9 to 16.9 in one CPU run)."""
        every = [(spec, spec.videos(self.config.seed + index)) for index, spec in enumerate(self.data)]
        real = [videos for spec, videos in every if spec.kind != "synthetic" and videos]
        per_source = real or [videos for _, videos in every]
        chosen: dict[str, object] = {}  # davis, davis-static and composite of one folder share their videos
        for rank in range(max((len(v) for v in per_source), default=0)):
            for videos in per_source:
                if rank < len(videos):
                    chosen.setdefault(videos[rank].name, videos[rank])
        return list(chosen.values())[: self.config.bn_calibration_videos]

    def _recalibrate(self) -> None:
        """Precise BatchNorm statistics for this step's checkpoint and validation (once per step)."""
        if not self.calibrate_batchnorm or self._calibrated_at == self.step:
            return
        from qmra.training.batchnorm import recalibrate_batchnorm

        recalibrate_batchnorm(self.model, self._calibration_videos(), self.config.bn_calibration_frames,
                              self._inference_settings(), self.context.device)
        self._calibrated_at = self.step

    def _save(self, name: str) -> None:
        self._recalibrate()
        save_run_checkpoint(self.run_dir, name, self.model, self.optimizer, self.step, self._record())

    def _keep(self) -> Path:
        """Weights only (no optimizer state) as ``step-N.safetensors``: a candidate, not a resume point."""
        self._recalibrate()
        return save_checkpoint(self.run_dir / f"step-{self.step}.safetensors", self.model, {"step": self.step})

    def _log(self, row: dict[str, float], writer: "TensorBoard | None") -> None:
        path = self.run_dir / "metrics.csv"
        self.run_dir.mkdir(parents=True, exist_ok=True)
        new = not path.exists()
        if new:
            self._metric_fields = METRIC_FIELDS
        elif self._metric_fields is None:  # a resumed run keeps its file's columns (older files have fewer)
            with path.open() as existing:
                self._metric_fields = tuple(existing.readline().strip().split(","))
        with path.open("a", newline="") as handle:
            out = csv.DictWriter(handle, fieldnames=self._metric_fields, extrasaction="ignore")
            if new:
                out.writeheader()
            out.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
        if writer is not None:
            writer.add(row)

    def _validate(self) -> dict[str, float]:
        """J&F on held-out videos through the real inference path (box protocol)."""
        from qmra.evaluation import evaluate_davis
        from qmra.evaluation.protocol import predict_davis
        from qmra.inference import Segmenter

        davis = _validation_davis(self.val, self.run_dir)  # type: ignore[arg-type]
        self._recalibrate()
        self.model.eval()
        try:
            with tempfile.TemporaryDirectory(dir=self.run_dir) as folder:
                segmenter = Segmenter(self.model, device=self.context.device, settings=self._inference_settings())
                predict_davis(segmenter, davis, folder)
                scores = evaluate_davis(davis, folder, processes=1).global_scores()
        finally:
            self.model.train()
        self.context.log(f"step {self.step}: validation J&F {scores['J&F-Mean']:.3f} (J {scores['J-Mean']:.3f}, F {scores['F-Mean']:.3f})")
        return {"val_jf": scores["J&F-Mean"], "val_j": scores["J-Mean"], "val_f": scores["F-Mean"]}

    def _plot(self) -> None:
        path = self.run_dir / "metrics.csv"
        if not path.exists():
            return
        with path.open() as handle:
            rows = list(csv.DictReader(handle))
        losses = {k: [(float(r["step"]), float(r[k])) for r in rows if r.get(k)] for k in ("loss", "track", "mask", "refined")}
        validation = {k: [(float(r["step"]), float(r[k])) for r in rows if r.get(k)] for k in ("val_jf", "val_j", "val_f")}
        panels = [("training loss", {k: v for k, v in losses.items() if v})]
        if any(validation.values()):
            panels.append(("validation (J&F, J, F)", {k: v for k, v in validation.items() if v}))
        plot_curves(self.run_dir / "curves.png", panels)


#: The ``--val`` kinds: videos validation scores through the real inference path.
VALIDATION_KINDS = ("davis", "synthetic", "cocovid", "youtube-vis")


def _validation_davis(spec: DataSpec, run_dir: Path):
    """The ``--val`` videos as a DAVIS folder (synthetic videos and a ``qmra export``'s written as one
    in the run's folder, once, whole or not at all)."""
    from qmra.data import DavisDataset

    if spec.kind == "davis":
        return spec.davis()
    root = run_dir / f"val-{spec.kind}"
    if not root.exists():
        # The training videos' own size for synthetic ones.
        videos = spec.synthetic_videos(seed=987_654, frames=20) if spec.kind == "synthetic" else spec.annotated_videos()
        run_dir.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=run_dir, prefix=f".val-{spec.kind}-"))
        try:
            for video in videos:
                video.write_davis(staging)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        staging.rename(root)
    return DavisDataset(root)
