from dataclasses import replace

import torch

from qmra.data import SyntheticConfig, SyntheticVideo
from qmra.inference.settings import InferenceSettings
from qmra.model import QMRA
from qmra.model.checkpoint import load_model
from qmra.training import DataSpec, TrainConfig, Trainer
from qmra.training.batchnorm import batchnorm_layers, recalibrate_batchnorm
from qmra.training.distributed import DistributedContext
from tests.tiny import TINY

#: The tiny network with BatchNorm trained (``qmra train --train-batchnorm``).
BN_TRAINED = replace(TINY, freeze_batchnorm=False)


def _videos(count=2, frames=4):
    return [SyntheticVideo(SyntheticConfig(64, 80, frames, num_objects=1 + i, seed=i)) for i in range(count)]


def _model():
    torch.manual_seed(0)
    model = QMRA(TINY)
    model.freeze_batchnorm(False)
    return model.train()


def test_running_statistics_become_the_average_over_whole_frames():
    model = _model()
    layer = model.query_encoder.bn1
    batch_means: list[torch.Tensor] = []
    hook = layer.register_forward_hook(lambda _m, inputs, _o: batch_means.append(inputs[0].detach().mean(dim=(0, 2, 3))))
    momentum = layer.momentum
    seen = recalibrate_batchnorm(model, _videos(), frames_per_sequence=3)
    hook.remove()
    assert seen == 6 and len(batch_means) == 6  # one query-encoder pass per frame
    torch.testing.assert_close(layer.running_mean, torch.stack(batch_means).mean(0), rtol=1e-4, atol=1e-5)
    assert layer.momentum == momentum and model.training and all(m.training for m in batchnorm_layers(model))


def test_recalibration_forgets_the_old_statistics():
    first, second = _model(), _model()
    for layer in batchnorm_layers(second):
        layer.running_mean.add_(3.0)
        layer.running_var.mul_(5.0)
    settings = InferenceSettings(resolution=48)
    for model in (first, second):
        recalibrate_batchnorm(model, _videos(), frames_per_sequence=2, settings=settings)
    for a, b in zip(batchnorm_layers(first), batchnorm_layers(second)):
        torch.testing.assert_close(a.running_mean, b.running_mean)
        torch.testing.assert_close(a.running_var, b.running_var)


def test_trainer_checkpoints_carry_recalibrated_statistics(tmp_path):
    config = TrainConfig(steps=2, batch_size=2, size=48, save_every=2, val_every=2, workers=0, bn_calibration_videos=2,
                         bn_calibration_frames=2, val_resolution=48)
    spec = DataSpec.parse("synthetic:2")
    trainer = Trainer(BN_TRAINED, config, [spec], tmp_path, DistributedContext(0, 1, torch.device("cpu")))
    trainer.run()
    saved, _ = load_model(tmp_path / "last.safetensors")
    assert saved.config.freeze_batchnorm is False and not saved.batchnorm_frozen  # the checkpoint says what training did
    expected, _ = load_model(tmp_path / "last.safetensors")
    for layer in batchnorm_layers(expected):
        layer.running_mean.fill_(7.0)
    recalibrate_batchnorm(expected, spec.videos(config.seed)[:2], 2, InferenceSettings(resolution=48))
    for a, b in zip(batchnorm_layers(saved), batchnorm_layers(expected)):
        torch.testing.assert_close(a.running_mean, b.running_mean)


def test_batchnorm_is_recalibrated_on_real_videos_when_the_mix_has_them(tmp_path):
    real = SyntheticVideo(SyntheticConfig(48, 64, 4, num_objects=1, seed=6), "realish")  # seed 5: no clip usable at 48x48
    real.write_davis(tmp_path / "davis")
    config = TrainConfig(steps=1, batch_size=1, size=48, workers=0, bn_calibration_videos=4)
    mixed = [DataSpec.parse("synthetic:3"), DataSpec.parse(f"davis:{tmp_path / 'davis'}")]
    trainer = Trainer(BN_TRAINED, config, mixed, tmp_path / "run", DistributedContext(0, 1, torch.device("cpu")))
    assert [v.name for v in trainer._calibration_videos()] == ["realish"]
    only_synthetic = Trainer(BN_TRAINED, config, mixed[:1], tmp_path / "run2", DistributedContext(0, 1, torch.device("cpu")))
    assert len(only_synthetic._calibration_videos()) == 3
