"""What ``qmra bench`` measures: the real session on a synthetic clip, timed, split by part, and
its memory over a long video.

- Speed: one session per object count; after ``warmup`` frames (by default until the memory is
  full, so that the Memory Read costs what it costs on long videos), the frames per second of
  ``runs`` consecutive windows of ``frames`` frames, and their median; frames decoded from JPEG
  files and results written as PNGs, as ``qmra segment`` does.
- Parts: one more window under :mod:`torch.profiler`, summing the model's labelled ranges
  (``qmra/encoders``, ``qmra/memory_read``, ``qmra/decoders``, ``qmra/crm``, ``qmra/merge``,
  ``qmra/io``); I/O on the background threads is timed on its own.
- One backbone pass (``encode_query``) at the same working size, in the same process.
- Memory: peak resident memory (and peak GPU memory on CUDA) after each of ``memory_frames``
  frames of one long run, and the memory frames the session holds.
"""

from __future__ import annotations

import contextlib
import functools
import os
import resource
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch

from qmra.data.frames import ArrayFrames, FrameFolder
from qmra.data.masks import write_palette_png
from qmra.data.synthetic import SyntheticConfig, SyntheticVideo
from qmra.inference.memory import frames_to_full_memory
from qmra.inference.segmenter import Segmenter
from qmra.inference.settings import InferenceSettings
from qmra.model import QMRA

PARTS = ("encoders", "memory_read", "decoders", "crm", "merge", "io")
#: The profiled window is short: under the profiler (CUDA activity above all) a frame costs many times more.
PROFILED_FRAMES = 5
#: At most this many distinct frames are rendered; longer runs play them forwards and backwards.
CLIP_FRAMES = 60


@dataclass(frozen=True)
class BenchSpec:
    """width × height in pixels; ``objects``: the object counts to time; ``frames``: timed frames per run."""

    width: int = 854
    height: int = 480
    objects: tuple[int, ...] = (1, 3)
    frames: int = 20
    runs: int = 3
    warmup: int | None = None  # None: until the memory is full (see frames_to_full_memory)
    profile: bool = True
    memory_frames: tuple[int, ...] = (100, 2000)
    memory_width: int = 854
    memory_height: int = 480
    model_only: bool = True  # also time the session on frames in memory, results not written


@dataclass
class SpeedResult:
    objects: int
    fps: float  # median over runs
    run_fps: list[float]
    frame_s: float  # 1 / fps
    parts_s: dict[str, float] = field(default_factory=dict)  # seconds per frame, profiled run
    decode_s: float = 0.0  # per frame, on the reading thread
    write_s: float = 0.0  # per frame, writing the palette PNG
    memory_frames_held: int = 0
    model_fps: float | None = None  # median over runs: frames already decoded, results not written
    model_run_fps: list[float] = field(default_factory=list)


def synthetic_clip(width: int, height: int, frames: int, objects: int, seed: int = 0) -> SyntheticVideo:
    return SyntheticVideo(SyntheticConfig(height, width, frames, num_objects=objects, num_distractors=1, seed=seed,
                                          exits=False))


def ping_pong(frames: list, count: int) -> Iterator:
    """``count`` frames: the clip forwards, backwards, forwards... (smooth motion at the turns)."""
    cycle = frames + frames[-2:0:-1] if len(frames) > 2 else frames
    for index in range(count):
        yield cycle[index % len(cycle)]


def write_ping_pong_jpegs(images: list[np.ndarray], folder: Path, count: int) -> None:
    """``count`` JPEG frames in ``folder`` (00000.jpg, ...) playing ``images`` forwards and backwards:
    each distinct image is encoded once, the repeats are hard links to it (copies where links fail)."""
    import shutil

    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    distinct = folder.with_name(folder.name + "-distinct")
    distinct.mkdir(exist_ok=True)
    for index, image in enumerate(images):
        Image.fromarray(image).save(distinct / f"{index:05d}.jpg", quality=90)
    order = list(range(len(images)))
    for index, source in enumerate(ping_pong(order, count)):
        target = folder / f"{index:05d}.jpg"
        try:
            os.link(distinct / f"{source:05d}.jpg", target)
        except OSError:
            shutil.copyfile(distinct / f"{source:05d}.jpg", target)


def resident_bytes() -> int:
    """The process's resident memory now (Linux), else its peak so far."""
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


@contextlib.contextmanager
def _native_stderr_silenced() -> Iterator[None]:
    """Point file descriptor 2 at /dev/null for a moment (native code ignores ``sys.stderr``)."""
    import sys

    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Bench:
    """Runs a :class:`BenchSpec` for one model and inference settings on one device."""

    def __init__(self, model: QMRA, settings: InferenceSettings, device: str | torch.device, spec: BenchSpec,
                 log: Callable[[str], None] = print) -> None:
        self.segmenter = Segmenter(model, device, settings)
        self.device = self.segmenter.device
        self.settings = self.segmenter.settings
        self.spec = spec
        self.log = log

    @functools.cached_property
    def clip(self) -> SyntheticVideo:
        """The clip every measurement plays (rendered once: rendering costs far more than a frame
        on a GPU): at most :data:`CLIP_FRAMES` distinct frames, longer runs play them back and forth."""
        spec = self.spec
        needed = self.warmup + spec.runs * spec.frames + (self.profiled_frames if spec.profile else 0)
        if (spec.memory_width, spec.memory_height) == (spec.width, spec.height) and spec.memory_frames:
            needed = max(needed, max(spec.memory_frames))
        return synthetic_clip(spec.width, spec.height, min(needed, CLIP_FRAMES), max(spec.objects))

    @functools.cached_property
    def clip_images(self) -> list[np.ndarray]:
        return [self.clip.image(i) for i in range(self.clip.num_frames)]

    # ------------------------------------------------------------------ speed

    @property
    def warmup(self) -> int:
        """Frames before the clock starts: the spec's, or (None) until every object's memory is full."""
        if self.spec.warmup is not None:
            return self.spec.warmup
        return frames_to_full_memory(self.settings.mem_every, self.settings.max_memory_frames)

    def speed(self, folder: Path) -> list[SpeedResult]:
        spec = self.spec
        count = self.warmup + spec.runs * spec.frames + (self.profiled_frames if spec.profile else 0)
        full = " (until the memory is full)" if spec.warmup is None else ""
        self.log(f"timing: {self.warmup} warm-up frames{full}, then {spec.runs} timed run(s) of {spec.frames} frames"
                 + (f" and {self.profiled_frames} profiled" if spec.profile else "") + f", per object count: {count} frames each"
                 + (", then the same in memory (model alone)" if spec.model_only else ""))
        video = self.clip
        frames_dir = folder / "frames"
        write_ping_pong_jpegs(self.clip_images, frames_dir, count)
        boxes = list(video.first_boxes().items())
        results = []
        for objects in spec.objects:
            run_fps, parts, held = self._run(frames_dir, boxes[:objects], folder / "out")
            fps = statistics.median(run_fps)
            result = SpeedResult(objects, fps, run_fps, 1 / fps, parts_s=parts, memory_frames_held=held)
            result.decode_s, result.write_s = self._io_times(frames_dir, video, folder / "io")
            if spec.model_only:
                result.model_run_fps = self._model_run(boxes[:objects])
                result.model_fps = statistics.median(result.model_run_fps)
            results.append(result)
            self.log(_speed_line(result))
        return results

    @property
    def profiled_frames(self) -> int:
        return min(self.spec.frames, PROFILED_FRAMES)

    def _timed_runs(self, frames: Iterator, each: Callable[[object], None] = lambda item: None,
                    settle: Callable[[], None] = lambda: None) -> list[float]:
        """Frames per second of ``spec.runs`` consecutive windows of ``spec.frames`` frames of
        ``frames``, each one handed to ``each``; ``settle`` finishes pending work before and after."""
        run_fps = []
        for _ in range(self.spec.runs):
            settle()
            _synchronize(self.device)
            started = time.perf_counter()
            for _ in range(self.spec.frames):
                each(next(frames))
            settle()
            _synchronize(self.device)
            run_fps.append(self.spec.frames / (time.perf_counter() - started))
        return run_fps

    def _model_run(self, boxes) -> list[float]:
        """The same timed runs on frames already decoded in memory, results not written: what the
        session itself costs (network, merge, the results' copy to the host)."""
        count = self.warmup + self.spec.runs * self.spec.frames
        session = self.segmenter.start(ArrayFrames(ping_pong(self.clip_images, count)), prompts=boxes)
        frames = session.propagate()
        try:
            for _ in range(self.warmup):
                next(frames)
            return self._timed_runs(frames)
        finally:
            frames.close()

    def _session(self, frames_dir: Path, boxes):
        return self.segmenter.start(FrameFolder(frames_dir), prompts=boxes)

    def _run(self, frames_dir: Path, boxes, out_dir: Path) -> tuple[list[float], dict[str, float], int]:
        """One session over the clip, reading JPEGs and writing PNGs as ``qmra segment`` does: after the
        warm-up frames, frames per second of each timed run (consecutive windows of ``spec.frames``
        frames), the seconds per frame of each part in one more, profiled window, and the most
        memory frames any object held at the end of the timed runs."""
        from qmra.inference.outputs import ResultWriter

        spec = self.spec
        session = self._session(frames_dir, boxes)
        writer = ResultWriter(out_dir, height=spec.height, width=spec.width, fps=None, video_name="bench")
        frames = session.propagate()
        try:
            for _ in range(self.warmup):
                writer.write(next(frames)[1])
            run_fps = self._timed_runs(frames, lambda item: writer.write(item[1]), writer.flush)
            held = max(len(session.memory_frames(i)) for i, _ in boxes)
            parts = self._profiled_window(frames, writer) if spec.profile else {}
        finally:
            frames.close()
            writer.close()
        return run_fps, parts, held

    def _profiled_window(self, frames: Iterator, writer) -> dict[str, float]:
        """Seconds per frame in each labelled part over the next ``spec.frames`` frames (device time on CUDA)."""
        from torch.profiler import ProfilerActivity, profile

        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if self.device.type == "cuda" else [])
        profiler = profile(activities=activities)
        with _native_stderr_silenced():  # the profiler's C++ side prints start/stop lines there
            profiler.start()
        try:
            for _ in range(self.profiled_frames):
                writer.write(next(frames)[1])
            writer.flush()
            _synchronize(self.device)
        finally:
            with _native_stderr_silenced():
                profiler.stop()
        totals = {part: 0.0 for part in PARTS}
        for event in profiler.key_averages():
            if event.key.startswith("qmra/") and event.key[5:] in totals:
                if self.device.type == "cuda":
                    micros = getattr(event, "device_time_total", 0) or getattr(event, "cuda_time_total", 0)
                else:
                    micros = event.cpu_time_total
                totals[event.key[5:]] += micros / 1e6 / self.profiled_frames
        return totals

    def _io_times(self, frames_dir: Path, video: SyntheticVideo, out_dir: Path) -> tuple[float, float]:
        """Seconds per frame to decode one JPEG frame and to write one palette PNG result."""
        source = FrameFolder(frames_dir)
        started = time.perf_counter()
        count = sum(1 for _ in source)
        decode = (time.perf_counter() - started) / count
        out_dir.mkdir(parents=True, exist_ok=True)
        labels = video.labels(0)
        started = time.perf_counter()
        for index in range(count):
            write_palette_png(out_dir / f"{index:05d}.png", labels)
        return decode, (time.perf_counter() - started) / count

    # ------------------------------------------------------------------ one backbone pass

    def backbone_seconds(self, repeats: int = 5) -> float:
        """Median time of one ``encode_query`` at the working size of the timed clip."""
        height, width = self.settings.working_size(self.spec.height, self.spec.width)
        model = self.segmenter.model
        prepared, _ = model.prepare(torch.rand(1, 3, height, width, device=self.device))
        if self.settings.channels_last:
            prepared = prepared.contiguous(memory_format=torch.channels_last)
        times = []
        bf16 = self.settings.precision == "bf16"
        with torch.inference_mode(), torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=bf16):
            for repeat in range(repeats + 1):
                _synchronize(self.device)
                started = time.perf_counter()
                model.encode_query(prepared)
                _synchronize(self.device)
                if repeat:  # the first is a warm-up
                    times.append(time.perf_counter() - started)
        return statistics.median(times)

    # ------------------------------------------------------------------ memory over a long video

    def memory(self) -> list[dict]:
        """Peak memory after each of ``spec.memory_frames`` frames of one long run (one object)."""
        spec = self.spec
        if not spec.memory_frames:
            return []
        total = max(spec.memory_frames)
        if (spec.memory_width, spec.memory_height) == (spec.width, spec.height):
            video, clip = self.clip, self.clip_images  # the speed runs' clip: no second rendering
        else:
            video = synthetic_clip(spec.memory_width, spec.memory_height, min(total, CLIP_FRAMES), 1, seed=1)
            clip = [video.image(i) for i in range(video.num_frames)]
        session = self.segmenter.start(ArrayFrames(ping_pong(clip, total)), prompts={1: video.first_boxes()[1]})
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        peak = 0
        marks = []
        started = time.perf_counter()
        for index, _ in session.propagate():
            peak = max(peak, resident_bytes())
            if index + 1 in spec.memory_frames:
                mark = {"frames": index + 1, "peak_rss_mib": peak / 2**20, "memory_bank_mib": session.memory_nbytes() / 2**20,
                        "memory_frames_held": len(session.memory_frames(1)),
                        "seconds_per_frame": (time.perf_counter() - started) / (index + 1)}
                if self.device.type == "cuda":
                    mark["peak_gpu_mib"] = torch.cuda.max_memory_allocated(self.device) / 2**20
                marks.append(mark)
                self.log(_memory_line(mark, spec))
        return marks


def _commit() -> str | None:
    """The git commit of the qmra source being timed (with ``-dirty`` for uncommitted changes), if
    it runs from a checkout."""
    import subprocess

    source = Path(__file__).resolve().parents[2]
    try:
        found = subprocess.run(["git", "-C", str(source), "describe", "--always", "--dirty", "--exclude", "*"],
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return found.stdout.strip() or None if found.returncode == 0 else None


def _speed_line(result: SpeedResult) -> str:
    line = (f"{result.objects} object(s): {result.fps:.3f} FPS ({result.frame_s * 1000:.0f} ms/frame; runs "
            + ", ".join(f"{f:.3f}" for f in result.run_fps) + f"), {result.memory_frames_held} memory frames held")
    if result.model_fps is not None:
        line += (f"\n    model alone (frames in memory, results not written): {result.model_fps:.3f} FPS "
                 f"({1000 / result.model_fps:.0f} ms/frame)")
    if result.parts_s:
        parts = ", ".join(f"{name} {seconds * 1000:.0f}" for name, seconds in result.parts_s.items())
        line += f"\n    parts (ms/frame, profiled run): {parts}"
    line += (f"\n    I/O on background threads (ms/frame): decode JPEG {result.decode_s * 1000:.1f}, "
             f"write PNG {result.write_s * 1000:.1f}")
    return line


def _memory_line(mark: dict, spec: BenchSpec) -> str:
    line = (f"memory after {mark['frames']} frames ({spec.memory_width}x{spec.memory_height}, 1 object): peak RSS "
            f"{mark['peak_rss_mib']:.0f} MiB")
    if "peak_gpu_mib" in mark:
        line += f", peak GPU {mark['peak_gpu_mib']:.0f} MiB"
    return line + f", memory bank {mark['memory_bank_mib']:.1f} MiB in {mark['memory_frames_held']} frames"


def run_bench(model: QMRA, settings: InferenceSettings, device: str | torch.device, spec: BenchSpec,
              log: Callable[[str], None] = print) -> dict:
    """Everything ``qmra bench`` reports, as a JSON-ready dict."""
    bench = Bench(model, settings, device, spec, log)
    with tempfile.TemporaryDirectory(prefix="qmra-bench-") as folder:
        speed = bench.speed(Path(folder))
    backbone = bench.backbone_seconds()
    log(f"one backbone pass (encode_query at {'x'.join(map(str, settings.working_size(spec.height, spec.width)[::-1]))}): "
        f"{backbone * 1000:.0f} ms")
    for result in speed:
        log(f"{result.objects} object(s): frame time / backbone pass = {result.frame_s / backbone:.1f}")
    memory = bench.memory()
    if len(memory) >= 2:
        ratio = memory[-1]["peak_rss_mib"] / memory[0]["peak_rss_mib"]
        log(f"peak RSS after {memory[-1]['frames']} frames / after {memory[0]['frames']} frames = {ratio:.3f}")
    ratios = {}
    if len(memory) >= 2:
        ratios["peak_rss_ratio"] = memory[-1]["peak_rss_mib"] / memory[0]["peak_rss_mib"]
        if "peak_gpu_mib" in memory[0]:
            ratios["peak_gpu_ratio"] = memory[-1]["peak_gpu_mib"] / memory[0]["peak_gpu_mib"]
    return {
        # First the numbers to compare across commits, by object count.
        "commit": _commit(),
        "fps": {str(r.objects): round(r.fps, 4) for r in speed},
        "model_fps": {str(r.objects): round(r.model_fps, 4) for r in speed if r.model_fps is not None},
        **{name: round(value, 4) for name, value in ratios.items()},
        "device": str(bench.device),
        "device_name": torch.cuda.get_device_name(bench.device) if bench.device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)",
        "torch": torch.__version__,
        "model": model.config.to_dict(),
        "settings": {k: getattr(settings, k) for k in settings.__dataclass_fields__},
        "spec": {k: getattr(spec, k) for k in spec.__dataclass_fields__},
        "speed": [vars(result) for result in speed],
        "backbone_s": backbone,
        "memory": memory,
    }
