"""``qmra train``'s network: continuing a checkpoint or a run needs none of its options repeated."""

from qmra.cli import build_parser, main
from qmra.commands.train import network
from qmra.inference.card import read_card
from qmra.model import ModelConfig
from tests.tiny import TINY, tiny_checkpoint


def _network(*argv):
    return network(build_parser().parse_args(["train", "--data", "synthetic:2", *map(str, argv)]))


def test_an_init_checkpoints_network_is_the_runs_unless_options_say_otherwise(tmp_path):
    init = tiny_checkpoint(tmp_path / "tiny.safetensors")
    assert _network("--out", tmp_path / "run", "--init", init) == TINY
    assert _network("--out", tmp_path / "run", "--init", init, "--variant", "no-crm") == ModelConfig(
        **{**TINY.to_dict(), "variant": "no-crm"})
    assert _network("--out", tmp_path / "run") == ModelConfig()  # nothing to continue: the defaults


def test_a_resumed_run_keeps_its_network_without_its_options(tmp_path, capsys):
    init = tiny_checkpoint(tmp_path / "tiny.safetensors")
    common = ["train", "--data", "synthetic:2", "--size", "48", "--batch-size", "2", "--workers", "0", "--quiet",
              "--out", str(tmp_path / "run")]
    assert main([*common, "--init", str(init), "--steps", "1"]) == 0
    assert _network("--out", tmp_path / "run", "--resume") == TINY
    assert main([*common, "--resume", "--steps", "2"]) == 0
    assert main([*common, "--resume", "--steps", "3", "--backbone", "resnet34"]) == 2
    assert "another network than asked for (--backbone resnet18, not resnet34)" in capsys.readouterr().err


def test_an_init_that_is_not_a_checkpoint_is_one_error_line(tmp_path, capsys):
    (tmp_path / "notes.safetensors").write_text("not weights")
    assert main(["train", "--data", "synthetic:2", "--out", str(tmp_path / "run"), "--init",
                 str(tmp_path / "notes.safetensors")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("qmra: error: ") and err.count("\n") == 1 and "Traceback" not in err, err


def test_a_run_from_weights_that_recommend_settings_recommends_them_too_after_a_resume(tmp_path):
    recommended = {"resolution": 96, "adapt_steps": 0, "stage2_box": "largest-blob"}
    init = tiny_checkpoint(tmp_path / "tiny.safetensors", metadata={"inference": recommended})
    common = ["train", "--data", "synthetic:2", "--size", "48", "--batch-size", "2", "--workers", "0", "--quiet"]
    assert main([*common, "--out", str(tmp_path / "run"), "--init", str(init), "--steps", "1"]) == 0
    assert read_card(tmp_path / "run" / "last.safetensors").recommended == recommended
    assert main([*common, "--out", str(tmp_path / "run"), "--resume", "--steps", "2"]) == 0
    card = read_card(tmp_path / "run" / "last.safetensors")
    assert card.recommended == recommended and card.metadata["step"] == 2
    assert card.metadata["training"]["inherited_inference"]["from"] == str(init)
    plain = tiny_checkpoint(tmp_path / "plain.safetensors")
    assert main([*common, "--out", str(tmp_path / "other"), "--init", str(plain), "--steps", "1"]) == 0
    assert read_card(tmp_path / "other" / "last.safetensors").recommended == {}
