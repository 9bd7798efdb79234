"""Every code block of README.md and docs/*.md is exercised, so that what the documentation says is
what happens. Ids and messages name the file and line (``docs/usage.md:12``).

- ``bash`` blocks: ``\\`` continuations are joined and comments dropped; ``NAME=value`` words before a
  command are its environment. Every command that runs qmra
  (``.venv/bin/qmra``, ``qmra``, ``python -m qmra``, ``torchrun ... -m qmra``) is parsed by qmra's
  own parser, so a flag that no longer exists fails here; ``make`` targets must be in the Makefile;
  ``.venv/bin/python benchmarks/X.py ARGS`` (or ``python -m benchmarks.X ARGS``) must exist and its
  own argparse must accept ARGS; ``bash benchmarks/X.sh [PART]`` must exist, pass ``bash -n``, know
  PART (a label of its ``case``) and read every variable the command sets (itself or through a
  script it runs or sources). Then
  the commands of the block run one after the other, as pasted, in a fresh folder that holds what
  they name (``video.mp4``, ``frames/``, ``boxes.json``, ``../shared/data/davis2016``,
  ``youtube-vos/valid``, the predictions a ``--results`` folder is said to hold), with a tiny random
  network standing in for the weights qmra ships; each must exit 0 and write what it names. Only
  what ``PARSE_ONLY`` lists is not run, for the reason given there; a command that is neither run
  (``RUN``) nor listed there fails the test.
- ``python`` blocks are executed in such a folder (its ``video.mp4`` has 41 frames: the example adds
  an object on frame 40), with the names the reader is assumed to hold (``memory_images``, ...)
  defined as small tensors. Calls written in a comment on a name the block defines (``# yours:
  Segmenter.from_checkpoint(...)``) are evaluated too, so the alternatives shown stay true.
- Blocks without a language are diagrams and file trees: they must hold no command.

Checkpoints the documents' ``qmra train`` commands write (``RUN_DIR/best.safetensors``, ...) are
stand-ins (the tiny network) wherever an example uses them; any other weights file an example names
must come with qmra. What needs the real DAVIS data (``../shared/data/davis2016``, found as
tests/conftest.py finds it) uses the first frames of the sequences the documents name, and is not run
when the data is absent.
"""

from __future__ import annotations

import argparse
import functools
import io
import json
import os
import re
import runpy
import shlex
import shutil
import subprocess
import sys
import tokenize
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import qmra.inference.card
from qmra.cli import build_parser, glue_negative_values, main
from qmra.data import Mp4Writer, SyntheticConfig, SyntheticVideo, open_frames
from qmra.errors import QmraError
from qmra.model import QMRA, ModelConfig
from qmra.model.checkpoint import save_checkpoint
from tests.model.torchvision_names import torchvision_resnet_shapes
from tests.tiny import TINY, write_youtube_vos_split

REPO = Path(__file__).resolve().parents[1]
#: The documents whose code blocks are checked. docs/cli.md and docs/model-card.md are generated
#: (tests/test_docs.py) and hold no code block; they are read all the same.
DOCUMENTS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
#: Where the documents say the DAVIS data is (relative to the checkout).
DAVIS_IN_DOCS = "../shared/data/davis2016"

#: Commands that are checked but not run, and why. Keys are what :func:`kind` returns.
PARSE_ONLY = {
    "qmra train": "needs ImageNet weights, DUTS/HKU-IS/COCO/YouTube-VOS/DAVIS training data and hours on a GPU "
                  "(tests/training runs the trainer on synthetic clips)",
    "qmra bench": "times the paper preset for minutes by design (tests/commands/test_bench.py runs it small)",
    "torchrun": "needs several GPUs or processes (tests/training runs two gloo processes)",
    "make": "sets up .venv/ and runs the demo or the whole suite (minutes); the Makefile must have the targets",
    "benchmark script": "timings that take minutes; the script must exist and its argparse accept the arguments",
    "qmra ui": "serves a web page until stopped (tests/ui drives it in a real Chromium)",
    "benchmark shell script": "packs data, trains or times for minutes to hours, much of it on a GPU; the script must "
                              "exist, pass bash -n, know the part asked for and read every variable the command sets",
    "ray": "starts a node of a Ray cluster (tests/commands/test_batch.py runs qmra batch on a local Ray instance)",
    "qmra batch --ray": "joins a Ray cluster that `ray start` made (tests/commands/test_batch.py runs a local instance)",
    "piped into qmra": "a camera's stream through ffmpeg (tests/data/test_video_pipe.py pipes a video into qmra segment -); "
                       "the qmra command after the pipe must parse",
}
#: Commands that run here (on the fixtures, with the tiny network).
RUN = {"qmra segment", "qmra batch", "qmra export", "qmra eval", "qmra synthetic", "qmra model"}
#: Appended to a command before it runs, to keep it under a second (argparse: the last value wins).
#: The command as written is parsed as well.
CHEAPER = {"qmra synthetic": ["--frames", "3"]}

#: Frames of the clip the commands get, and of the one the Python examples get (one adds object 2 on frame 40).
SHORT_CLIP, LONG_CLIP = 4, 41
#: Frames kept of each real DAVIS sequence.
DAVIS_FRAMES = 4


# --- reading the documents ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Block:
    source: str  # the document, relative to the checkout: "README.md", "docs/usage.md"
    language: str  # "" for none
    line: int  # of the opening fence
    text: str

    def __str__(self) -> str:
        return f"{self.source}:{self.language or 'plain'}-line{self.line}"


@dataclass(frozen=True)
class Command:
    source: str
    line: int
    text: str  # continuations joined, comments dropped
    argv: tuple[str, ...]  # without the NAME=value words before it
    env: tuple[str, ...] = ()  # the names those words set

    def __str__(self) -> str:
        return f"{self.source}:{self.line}: {self.text}"


_FENCE = re.compile(r"^(`{3,}|~{3,})\s*([\w+.-]*)\s*$")
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


def markdown_blocks(path: Path) -> list[Block]:
    """The fenced code blocks of one document, in order."""
    source = path.relative_to(REPO).as_posix()
    blocks: list[Block] = []
    opened: tuple[str, str, int] | None = None  # fence, language, line
    body: list[str] = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if opened is None:
            match = _FENCE.match(line)
            if match:
                opened, body = (match.group(1), match.group(2).lower(), number), []
        elif line.strip().startswith(opened[0]) and set(line.strip()) == {opened[0][0]}:
            blocks.append(Block(source, opened[1], opened[2], "".join(f"{b}\n" for b in body)))
            opened = None
        else:
            body.append(line)
    assert opened is None, f"{source}:{opened[2]}: a code block is never closed"
    return blocks


def shell_commands(block: Block) -> list[Command]:
    """A shell block's commands: ``\\`` continuations joined, comments dropped."""
    commands: list[Command] = []
    pending, start = "", None
    for offset, line in enumerate(block.text.splitlines(), start=1):
        start = start or block.line + offset
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        words = shlex.split(pending + line, comments=True)
        env = []
        while words and _ASSIGNMENT.match(words[0]):
            env.append(words.pop(0).split("=", 1)[0])
        if words:
            text = " ".join(shlex.split(pending + line, comments=True))
            commands.append(Command(block.source, start, text, tuple(words), tuple(env)))
        pending, start = "", None
    assert not pending, f"{block.source}:{start}: a command ends with a line continuation"
    return commands


def qmra_arguments(argv: tuple[str, ...]) -> tuple[str, list[str]] | None:
    """(launcher, qmra's own arguments) for a command that runs qmra, else None."""
    program = Path(argv[0]).name
    if program == "qmra":
        return "qmra", list(argv[1:])
    if program in ("python", "python3", "torchrun") and "-m" in argv:
        at = argv.index("-m")
        if argv[at + 1 : at + 2] == ("qmra",):
            return program, list(argv[at + 2 :])
    return None


def piped_qmra(command: Command) -> Command | None:
    """The qmra command that ``command`` pipes into (``PRODUCER ... | qmra ...``), or None."""
    if "|" not in command.argv:
        return None
    downstream = command.argv[command.argv.index("|") + 1 :]
    return Command(command.source, command.line, " ".join(downstream), downstream) if qmra_arguments(downstream) else None


def kind(command: Command) -> str:
    """What sort of command this is: a key of ``RUN`` or ``PARSE_ONLY``, or the test fails."""
    if piped_qmra(command) is not None:
        return "piped into qmra"
    found = qmra_arguments(command.argv)
    if found:
        args = parse_qmra(command)
        if found[0] == "torchrun":
            return "torchrun"
        return "qmra batch --ray" if args.command == "batch" and args.ray else f"qmra {args.command}"
    program = Path(command.argv[0]).name
    if program == "ray":
        return "ray"
    if program == "make":
        return "make"
    if program in ("python", "python3") and benchmark_script(command.argv):
        return "benchmark script"
    if program == "bash" and len(command.argv) > 1 and re.fullmatch(r"benchmarks/[\w.-]+\.sh", command.argv[1]):
        return "benchmark shell script"
    pytest.fail(f"{command}\nis a command tests/test_readme.py does not know: run it there (RUN), or say in "
                "PARSE_ONLY why it cannot run")


def benchmark_script(argv: tuple[str, ...]) -> tuple[str, list[str]] | None:
    """(the script's path, its arguments) for ``python benchmarks/X.py ARGS`` or ``python -m benchmarks.X ARGS``."""
    if len(argv) > 1 and argv[1].startswith("benchmarks/"):
        return argv[1], list(argv[2:])
    if len(argv) > 2 and argv[1] == "-m" and argv[2].startswith("benchmarks."):
        return argv[2].replace(".", "/") + ".py", list(argv[3:])
    return None


def parse_qmra(command: Command) -> argparse.Namespace:
    """qmra's own parser on the command's arguments, as the ``qmra`` entry point parses them."""
    _, arguments = qmra_arguments(command.argv)
    try:
        return build_parser().parse_args(glue_negative_values(arguments))
    except SystemExit as error:
        pytest.fail(f"{command}\nis refused by qmra's parser (exit {error.code}; its message is in the captured stderr)")


BLOCKS = [block for document in DOCUMENTS for block in markdown_blocks(document)]
SHELL_BLOCKS = [b for b in BLOCKS if b.language == "bash"]
PYTHON_BLOCKS = [b for b in BLOCKS if b.language == "python"]
COMMANDS = [c for b in SHELL_BLOCKS for c in shell_commands(b)]


@functools.cache
def trained_checkpoints() -> frozenset[Path]:
    """The checkpoints the documents' ``qmra train`` commands write: what their examples may use."""
    written = set()
    for args in parsed_qmra_commands():
        if args.command == "train":
            written |= {Path(args.out) / "best.safetensors", Path(args.out) / "last.safetensors"}
    return frozenset(written)


def davis_sequences_named() -> list[str]:
    """The DAVIS sequences the documents' commands name (``--sequences``)."""
    names: list[str] = []
    for args in parsed_qmra_commands():
        names += [n for n in (getattr(args, "sequences", None) or "").split(",") if n and n not in names]
    return names


def parsed_qmra_commands() -> list[argparse.Namespace]:
    """Every qmra command of the documents that parses (the test of its block reports one that does not)."""
    parsed = []
    for command in COMMANDS:
        found = qmra_arguments(command.argv)
        if found:
            try:
                parsed.append(build_parser().parse_args(glue_negative_values(found[1])))
            except SystemExit:
                pass
    return parsed


def real_davis() -> Path | None:
    """The real DAVIS 2016 copy, as tests/conftest.py's ``davis_root`` finds it."""
    root = Path(os.environ.get("QMRA_DAVIS_ROOT") or REPO.parent / "shared" / "data" / "davis2016")
    return root if root.is_dir() else None


# --- what the examples name -----------------------------------------------------------------------


class Library:
    """Fixtures, each made once per module when first asked for."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @functools.cached_property
    def weights(self) -> Path:
        """A tiny random network that recommends a 64-pixel working size: fast stand-in weights."""
        return save_checkpoint(self.root / "tiny.safetensors", QMRA(TINY), metadata={"inference": {"resolution": 64}})

    @functools.cached_property
    def frames(self) -> list[np.ndarray]:
        """560×320 frames: large enough to hold the documents' boxes (x up to 520, y up to 310)."""
        video = SyntheticVideo(SyntheticConfig(height=320, width=560, num_frames=SHORT_CLIP, num_objects=2, seed=0))
        return [video.image(i) for i in range(SHORT_CLIP)]

    def video(self, num_frames: int) -> Path:
        path = self.root / f"video-{num_frames}.mp4"
        if not path.is_file():
            with Mp4Writer(path, 560, 320, fps=24) as writer:
                for index in range(num_frames):
                    writer.write(self.frames[index % len(self.frames)])
        return path

    @functools.cached_property
    def frame_folder(self) -> Path:
        """JPEGs named 0, 5, 10, 15: numeric order is not string order."""
        folder = self.root / "frames"
        folder.mkdir()
        for index, frame in enumerate(self.frames):
            Image.fromarray(frame).save(folder / f"{index * 5}.jpg", quality=90)
        return folder

    @functools.cached_property
    def boxes_file(self) -> Path:
        """Object 1 on the first frame, object 7 from the third frame on."""
        path = self.root / "boxes.json"
        path.write_text(json.dumps([{"id": 1, "frame": 0, "box": [120, 40, 380, 300]},
                                    {"id": 7, "frame": 2, "box": [400, 60, 520, 310]}]))
        return path

    @functools.cached_property
    def davis_shared(self) -> Path | None:
        """``shared/`` holding ``data/davis2016``: the first frames of the real sequences the documents name
        (or of one sequence), linked, not copied; None without the real data."""
        real = real_davis()
        if real is None:
            return None
        names = davis_sequences_named() or sorted(p.name for p in (real / "JPEGImages" / "480p").iterdir())[:1]
        root = self.root / "shared" / "data" / "davis2016"
        for folder in ("JPEGImages", "Annotations"):
            for name in names:
                source = real / folder / "480p" / name
                target = root / folder / "480p" / name
                target.mkdir(parents=True)
                for path in sorted(source.iterdir())[:DAVIS_FRAMES]:
                    (target / path.name).symlink_to(path)
        return self.root / "shared"

    @functools.cached_property
    def youtube_vos(self) -> Path:
        """A YouTube-VOS split folder: one video, annotated every 5th frame, object 2 appearing later."""
        return write_youtube_vos_split(self.root / "youtube-vos-valid")

    @functools.cached_property
    def image_mask_folder(self) -> Path:
        """A saliency set in DUTS-TR's own layout (DUTS-TR-Image/, DUTS-TR-Mask/)."""
        root = self.root / "DUTS-TR"
        (root / "DUTS-TR-Image").mkdir(parents=True)
        (root / "DUTS-TR-Mask").mkdir()
        for index in range(2):
            image = self.frames[index][:96, :128]
            mask = np.zeros((96, 128), np.uint8)
            mask[20 + index * 10 : 70, 30:100] = 255
            Image.fromarray(image).save(root / "DUTS-TR-Image" / f"sun_{index}.jpg")
            Image.fromarray(mask).save(root / "DUTS-TR-Mask" / f"sun_{index}.png")
        return root

    def torchvision_weights(self, name: str) -> Path:
        """A torchvision-named ResNet state dict (values do not matter), its depth read from ``name``."""
        depth = re.search(r"resnet(18|34|50)", name)
        assert depth, f"{name}: cannot tell which ResNet the example means"
        path = self.root / name
        if not path.is_file():
            shapes = torchvision_resnet_shapes(f"resnet{depth.group(1)}")
            torch.save({k: torch.ones(s) if k.endswith("running_var") else torch.zeros(s) for k, s in shapes.items()}, path)
        return path


@pytest.fixture(scope="module")
def library(tmp_path_factory) -> Library:
    return Library(tmp_path_factory.mktemp("readme-fixtures"))


def workspace(tmp_path: Path, library: Library, text: str, clip_frames: int, monkeypatch) -> Path:
    """A fresh folder (made the current one) with what ``text`` names, the tiny network as qmra's
    shipped weights, and the checkpoints the documents' train commands write."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setattr(qmra.inference.card, "DEFAULT_WEIGHTS", library.weights)
    (work / "video.mp4").symlink_to(library.video(clip_frames))
    (work / "frames").symlink_to(library.frame_folder, target_is_directory=True)
    (work / "boxes.json").symlink_to(library.boxes_file)
    if "videos.jsonl" in text:  # a batch manifest: the clip twice, one object each
        (work / "videos.jsonl").write_text(json.dumps({"video": "video.mp4", "id": "a", "boxes": [[120, 40, 380, 300]]})
                                           + "\n" + json.dumps({"video": "video.mp4", "id": "b",
                                                                "boxes": [[400, 60, 520, 310]]}) + "\n")
    for checkpoint in trained_checkpoints():
        (work / checkpoint).parent.mkdir(parents=True, exist_ok=True)
        (work / checkpoint).symlink_to(library.weights)
    if DAVIS_IN_DOCS in text and library.davis_shared is not None:
        (tmp_path / "shared").symlink_to(library.davis_shared, target_is_directory=True)
    if "DUTS-TR" in text:
        (work / "DUTS-TR").symlink_to(library.image_mask_folder, target_is_directory=True)
    for name in set(re.findall(r"[\w.-]+\.pth\b", text)):
        (work / name).symlink_to(library.torchvision_weights(name))
    return work


# --- the tests ------------------------------------------------------------------------------------


def test_the_documents_have_the_blocks_this_test_knows():
    languages = {b.language for b in BLOCKS}
    assert languages <= {"bash", "python", ""}, (
        f"blocks in {languages - {'bash', 'python', ''}}: teach tests/test_readme.py to run them")
    assert SHELL_BLOCKS and PYTHON_BLOCKS and COMMANDS
    assert all(shell_commands(b) for b in SHELL_BLOCKS), "a shell block without a command"


_COMMAND_LINE = re.compile(r"^\s*(\$\s+)?(\.venv/bin/\S+|qmra|python3?|torchrun|make|pip)(\s|$)")


@pytest.mark.parametrize("block", [b for b in BLOCKS if not b.language], ids=str)
def test_unlabelled_blocks_are_diagrams_not_commands(block):
    commands = [line for line in block.text.splitlines() if _COMMAND_LINE.match(line)]
    assert not commands, f"{block.source}:{block.line}: a block without a language holds commands (label it ```bash): {commands}"


@pytest.mark.parametrize("block", SHELL_BLOCKS, ids=str)
def test_shell_block_works_as_pasted(block, tmp_path, library, monkeypatch, capsys):
    work = workspace(tmp_path, library, block.text, SHORT_CLIP, monkeypatch)
    ran, without_davis = [], []
    for command in shell_commands(block):
        what = kind(command)
        assert what in RUN or what in PARSE_ONLY, f"{command}\n({what}) is neither in RUN nor in PARSE_ONLY"
        if what == "make":
            check_make_targets(command)
        elif what == "benchmark script":
            check_benchmark_script(command, monkeypatch)
        elif what == "benchmark shell script":
            check_shell_script(command)
        elif what == "ray":
            assert command.argv[1:2] == ("start",), f"{command}: only `ray start` is documented here"
        elif what == "piped into qmra":
            parse_qmra(piped_qmra(command))
        elif what in PARSE_ONLY:
            args = parse_qmra(command)
            if args.command == "train":
                check_train_arguments(command, args)
        elif DAVIS_IN_DOCS in command.text and library.davis_shared is None:
            parse_qmra(command)
            without_davis.append(command.text)
        else:
            run_qmra(command, what, work, library, capsys)
            ran.append(command.text)
    if without_davis:
        pytest.skip(f"ran {len(ran)} command(s); the real DAVIS data is absent, so these were only parsed: {without_davis}")


def check_make_targets(command: Command) -> None:
    makefile = (REPO / "Makefile").read_text()
    targets = set(re.findall(r"^([\w.-]+)\s*:(?!=)", makefile, flags=re.MULTILINE))
    for target in (a for a in command.argv[1:] if not a.startswith("-") and "=" not in a):
        assert target in targets, f"{command}\nthe Makefile has no target {target!r} (it has {sorted(targets)})"


def check_train_arguments(command: Command, args: argparse.Namespace) -> None:
    """What ``qmra train`` checks before it reads any data: the data specs and both configurations.
    ``--data ...`` (an elision in the documents) is left alone."""
    from qmra.options import from_options
    from qmra.training.specs import DataSpec
    from qmra.training.config import TrainConfig

    for spec in [*args.data, *([args.val] if args.val else [])]:
        if spec != "...":
            try:
                DataSpec.parse(spec)
            except QmraError as error:
                pytest.fail(f"{command}\n{error}")
    for config in (ModelConfig, TrainConfig):
        try:
            from_options(args, config)
        except QmraError as error:
            pytest.fail(f"{command}\n{error}")


class _Parsed(Exception):
    pass


def check_benchmark_script(command: Command, monkeypatch) -> None:
    """The script exists and its argparse accepts the arguments (it stops right after parsing them)."""
    name, arguments = benchmark_script(command.argv)
    script = REPO / name
    assert script.is_file(), f"{command}\n{name} does not exist"
    parse_args = argparse.ArgumentParser.parse_args

    def parse_then_stop(self, args=None, namespace=None):
        raise _Parsed(parse_args(self, args, namespace))

    with monkeypatch.context() as patch:
        patch.setattr(argparse.ArgumentParser, "parse_args", parse_then_stop)
        patch.setattr(sys, "argv", [str(script), *arguments])
        try:
            runpy.run_path(str(script), run_name="__main__")
        except SystemExit as error:
            pytest.fail(f"{command}\nis refused by the script's parser (exit {error.code})")
        except _Parsed:
            return
    pytest.fail(f"{command}\nnever parsed its arguments with argparse")


def check_shell_script(command: Command) -> None:
    """``bash benchmarks/X.sh [PART]``: the script exists and parses, PART is one of its ``case`` labels,
    and every variable the command sets is read by it or by a script it runs or sources."""
    script = REPO / command.argv[1]
    assert script.is_file(), f"{command}\n{command.argv[1]} does not exist"
    checked = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert checked.returncode == 0, f"{command}\n{command.argv[1]} does not parse: {checked.stderr}"
    text = script.read_text()
    parts = {label for line in text.splitlines() for match in [re.match(r"^\s*([\w|-]+)\)\s*(#.*)?$", line)] if match
             for label in match.group(1).split("|")}
    for part in command.argv[2:3]:
        assert part in parts, f"{command}\n{command.argv[1]} has no part {part!r} (it has {sorted(parts) or 'none'})"
    assert len(command.argv) <= 3, f"{command}\n{command.argv[1]} takes at most one argument, the part"
    texts, seen = [text], {script.name}
    while texts:  # the scripts it runs (bash benchmarks/Y.sh) or sources (source ".../Y.sh")
        for name in re.findall(r"(?:bash\s+benchmarks/|source\s+\S*/)([\w.-]+\.sh)", texts.pop()):
            if name not in seen and (REPO / "benchmarks" / name).is_file():
                seen.add(name)
                texts.append((REPO / "benchmarks" / name).read_text())
                text += (REPO / "benchmarks" / name).read_text()
    for name in command.env:
        assert re.search(rf"\$\{{?{name}\b", text), (
            f"{command}\nsets {name}, which {command.argv[1]} (and the scripts it runs) never read")


def run_qmra(command: Command, what: str, work: Path, library: Library, capsys) -> None:
    """Run the command in this process, on the fixtures; it must exit 0 and write what it names."""
    args = parse_qmra(command)
    if args.command == "eval" and args.results and args.davis:
        write_ground_truth_as_predictions(Path(args.davis), Path(args.results))
    if getattr(args, "youtube_vos", None) and not Path(args.youtube_vos).exists():
        Path(args.youtube_vos).parent.mkdir(parents=True, exist_ok=True)
        Path(args.youtube_vos).symlink_to(library.youtube_vos, target_is_directory=True)
    _, arguments = qmra_arguments(command.argv)
    capsys.readouterr()
    code = main([*arguments, *CHEAPER.get(what, [])])
    printed, errors = capsys.readouterr()
    assert code == 0, f"{command}\nexited with {code} in {work}:\n{errors}"
    check_outputs(command, args, printed)


def write_ground_truth_as_predictions(davis: Path, results: Path) -> None:
    """The 0/255 ground truth as the predictions: the documents say those are read as they are."""
    for sequence in (davis / "Annotations" / "480p").iterdir():
        (results / sequence.name).mkdir(parents=True)
        for mask in sequence.iterdir():
            shutil.copyfile(mask, results / sequence.name / mask.name)


def check_outputs(command: Command, args: argparse.Namespace, printed: str) -> None:
    if args.command == "segment":
        source = open_frames(args.source)
        first, last = args.frames
        segmented = range(first, source.info.num_frames if last is None else last + 1, args.every)
        expected = [source.frame_name(i) + ".png" for i in segmented]
        assert sorted(p.name for p in Path(args.out).glob("*.png")) == sorted(expected), command
        if args.per_object:
            ids = range(1, len(args.box) + 1) if args.box else [e["id"] for e in json.loads(Path(args.boxes).read_text())]
            for object_id in ids:
                assert sorted(p.name for p in (Path(args.out) / str(object_id)).glob("*.png")) == sorted(expected), command
        if args.overlay:
            assert open_frames(args.overlay).info.num_frames == len(expected), command
        if args.rle:
            assert len(json.loads(Path(args.rle).read_text())["frames"]) == len(expected), command
    elif args.command == "batch":
        index = [json.loads(line) for line in (Path(args.out) / "index.jsonl").read_text().splitlines()]
        assert {r["id"]: r["status"] for r in index} == {"a": "done", "b": "done"}, command
        for record in index:
            sampled = len(range(0, SHORT_CLIP, args.every))
            assert len(list((Path(args.out) / record["id"]).glob("*.png"))) == record["frames"] == sampled, command
    elif args.command == "export":
        masks = (list(Path(args.results).glob("*/*.png")) if (Path(args.results) / "index.jsonl").is_file()
                 else list(Path(args.results).glob("*.png")))
        out = Path(args.out)
        if args.format == "davis":
            frames = [f for video in json.loads((out / "qmra-export.json").read_text())["videos"] for f in video["frames"]]
            images = list((out / "JPEGImages" / "480p").glob("*/*"))
            assert len(list((out / "Annotations" / "480p").glob("*/*.png"))) == len(masks), command
        else:
            document = json.loads((out / "annotations.json").read_text())
            frames = (document["images"] if args.format == "coco"
                      else [name for video in document["videos"] for name in video["file_names"]])
            images = list((out / "images").glob("*/*"))
        assert len(frames) == len(masks) == len(images), command
    elif args.command == "eval" and args.davis:
        results = Path(args.results or args.out)
        for name in ("global_results-val.csv", "per-sequence_results-val.csv"):
            assert (results / name).is_file(), f"{command}\nwrote no {name}"
        if args.results:  # the ground truth scores 1
            assert (results / "global_results-val.csv").read_text().splitlines()[1].startswith("1.000,1.000"), command
        else:
            for sequence in (Path(args.davis) / "JPEGImages" / "480p").iterdir():
                if not args.sequences or sequence.name in args.sequences.split(","):
                    assert len(list((results / sequence.name).glob("*.png"))) == DAVIS_FRAMES, command
    elif args.command == "eval":
        annotations = Path(args.out) / "Annotations"
        assert sorted(p.name for p in (annotations / "v1").glob("*.png")) == [f"{i * 5:05d}.png" for i in range(4)], command
    elif args.command == "synthetic":
        out = Path(args.out)
        assert out.exists(), f"{command}\nwrote no {out}"
        if out.suffix == ".mp4":
            assert (out.parent / f"{out.stem}-masks").is_dir(), command
    elif args.command == "model":
        assert "total" in printed, command
    else:
        pytest.fail(f"{command}\nruns, but tests/test_readme.py does not know what it should write")


def reader_names() -> dict[str, torch.Tensor]:
    """What the network example assumes the reader holds: B = 1 clip of T = 2 memory frames, 64×64."""
    box = torch.zeros(1, 1, 64, 64)
    box[..., 16:48, 12:52] = 1
    mask = torch.zeros(1, 1, 64, 64)
    mask[..., 20:44, 16:48] = 1
    return {"memory_images": torch.rand(1, 2, 3, 64, 64), "memory_box_maps": box[:, None].repeat(1, 2, 1, 1, 1),
            "query_image": torch.rand(1, 3, 64, 64), "query_mask": mask, "query_box_map": box}


def calls_in_comments(source: str) -> list[str]:
    """Python calls written in the comments of ``source`` (``Segmenter.from_checkpoint("x", ...)``)."""
    calls = []
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type != tokenize.COMMENT:
            continue
        text = token.string
        for match in re.finditer(r"(?<![\w.])[A-Za-z_][\w.]*\(", text):
            depth = 0
            for end in range(match.end() - 1, len(text)):
                depth += {"(": 1, ")": -1}.get(text[end], 0)
                if depth == 0:
                    break
            candidate = text[match.start() : end + 1]
            try:
                compile(candidate, "<comment>", "eval")
            except SyntaxError:
                continue
            calls.append(candidate)
    return calls


@pytest.mark.parametrize("block", PYTHON_BLOCKS, ids=str)
def test_python_block_runs(block, tmp_path, library, monkeypatch):
    if DAVIS_IN_DOCS in block.text and library.davis_shared is None:
        pytest.skip("the real DAVIS data is absent")
    workspace(tmp_path, library, block.text, LONG_CLIP, monkeypatch)
    namespace = {"__name__": "__readme__", **reader_names()}
    exec(compile("\n" * block.line + block.text, str(REPO / block.source), "exec"), namespace)  # the document's line numbers
    for call in calls_in_comments(block.text):
        if re.match(r"[\w]+", call).group(0) in namespace:
            eval(call, namespace)
