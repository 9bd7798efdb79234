"""``DIR/index.jsonl``: one JSON line per video and attempt, the last line of an id being its state.

A line is appended, flushed and synced when a video ends (done, failed or interrupted), so a run
stopped at any moment leaves a valid index; a torn last line (a power cut) is skipped when read.
A later run takes the index with the files on disk to know what is finished (:meth:`ResultIndex.done`).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

#: A video's state in the index.
DONE, FAILED, INTERRUPTED = "done", "failed", "interrupted"


@dataclass
class VideoRecord:
    """How one video went: ``status`` (done, failed, interrupted), ``frames`` with results on disk,
    ``seconds`` of work, ``lost`` (object id → the frame it was lost from, for objects lost to the
    end), ``doubtful`` (object id → doubtful frames), ``error`` (one line, for a failed video),
    ``warnings`` (the lines ``qmra segment`` would print), ``attempt`` (1, then 2 for a retry),
    ``run`` (:func:`run_fingerprint` of the weights, settings and outputs it was made with),
    ``unhidden`` (with a redacted video: object id → the frames where it does not hide the object,
    as ranges; left out of the line when there are none)."""

    id: str
    video: str
    status: str
    frames: int = 0
    seconds: float = 0.0
    lost: dict[str, int] = field(default_factory=dict)
    doubtful: dict[str, int] = field(default_factory=dict)
    error: str | None = None
    warnings: list[str] = field(default_factory=list)
    attempt: int = 1
    run: str = ""
    unhidden: dict[str, str] = field(default_factory=dict)

    def line(self) -> str:
        """The index line (the warnings stay out: they are printed, and can be many)."""
        record = asdict(self)
        record.pop("warnings")
        if not self.unhidden:
            record.pop("unhidden")
        record["seconds"] = round(self.seconds, 3)
        return json.dumps(record)


class ResultIndex:
    """The index at ``path``: read once when opened, appended to as videos end."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.latest: dict[str, dict] = {}
        if path.is_file():
            for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line torn by a crash: that video counts as not finished
                if isinstance(record, dict) and isinstance(record.get("id"), str):
                    self.latest[record["id"]] = record

    def add(self, record: VideoRecord) -> None:
        """Append ``record`` and put it on disk before returning."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as index:
            index.write(record.line() + "\n")
            index.flush()
            os.fsync(index.fileno())
        self.latest[record.id] = json.loads(record.line())

    def done(self, video_id: str, run: str) -> dict | None:
        """The video's last record when it says done, by a run with the fingerprint ``run``; else None
        (another run's results are checked again, as a partly done video's are)."""
        record = self.latest.get(video_id)
        if record is None or record.get("status") != DONE or record.get("run") != run:
            return None
        return record


#: Inference settings added after batch digests were, with the value that does what qmra did before
#: them: left out of the digest at that value, so that batches made before keep their digests.
SETTINGS_ADDED_LATER = {"previous_every": 1, "min_piece": 0.0, "redetect": False, "adapt_target": "box"}


def run_fingerprint(weights: Path, settings: object, outputs: object) -> str:
    """A short digest of what makes a batch's results: the weights file (path, size, modification
    time), the inference settings and the output switches (dataclasses). Switches left unset (None),
    and settings added later at their old behaviour (:data:`SETTINGS_ADDED_LATER`), are left out, so
    that runs made before them keep their digests."""
    stat = weights.stat()
    switches = {name: value for name, value in asdict(outputs).items() if value is not None}
    chosen = {name: value for name, value in asdict(settings).items()
              if name not in SETTINGS_ADDED_LATER or value != SETTINGS_ADDED_LATER[name]}
    described = json.dumps([str(weights.resolve()), stat.st_size, stat.st_mtime_ns, chosen, switches],
                           sort_keys=True, default=str)
    return hashlib.sha256(described.encode()).hexdigest()[:16]
