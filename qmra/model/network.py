"""The QMRA network: two-stage re-aggregation (track, then segment) with a cascaded refinement.

The module holds weights only. Per-video state (the memory) is built by the caller from the
parts below, so that inference can encode each memory frame once, keep its keys and values, and
share one query encoding across all objects of a frame:

- :meth:`QMRA.encode_query` — ``fq(I)``, once per frame, shared by every object;
- :meth:`QMRA.encode_memory` — ``fm(I, B)``; :meth:`QMRA.memorize` turns it into keys and values;
- :meth:`QMRA.predict` — both stages and the CRM for one query frame against a :class:`Memory`.

:meth:`QMRA.forward` (training) chains them for clips of T memory frames and one query.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import torch
from torch import nn
from torch.profiler import record_function

from qmra.model.config import ModelConfig
from qmra.model.crm import CascadedRefinementModule, FoldedCRMInput
from qmra.model.decoder import Decoder
from qmra.model.preprocess import STRIDE, Padding, prepare_image
from qmra.model.prior import mask_prior, rectangle_prior
from qmra.model.qma import KeyValueMaps, MemoryTokens, QueryMemoryAggregation
from qmra.model.resnet import BackboneFeatures, ResNetTrunk
from qmra.model.weights import BackboneLoadReport, load_backbone_weights


@dataclass(frozen=True)
class MemoryFrame:
    """Keys and values of one memory frame for both stages: tensors B×C×h×w (B objects).

    ``segment`` is None for the ``1stage`` variant.
    """

    track: KeyValueMaps
    segment: KeyValueMaps | None


@dataclass(frozen=True)
class Memory:
    """T memory frames of B objects as tokens (:class:`MemoryTokens`, B×T·h·w×C), for both stages.

    ``frame_tokens`` is h·w, the positions of one frame. The order of the frames does not matter.
    """

    track: MemoryTokens
    segment: MemoryTokens | None
    frame_tokens: int

    @classmethod
    def stack(cls, frames: Sequence[MemoryFrame]) -> "Memory":
        """T frames' keys and values (B×C×h×w each) → one memory (copies them into token layout)."""
        frames = list(frames)
        if not frames:
            raise ValueError("memory needs at least one frame")
        segment = None if frames[0].segment is None else MemoryTokens.from_frames([f.segment for f in frames])  # type: ignore[misc]
        h, w = frames[0].track.value.shape[-2:]
        return cls(MemoryTokens.from_frames([f.track for f in frames]), segment, h * w)

    @classmethod
    def concat_objects(cls, memories: Sequence["Memory"]) -> "Memory":
        """Memories of equal T and frame size, B₁, B₂, ... objects → one batch of ΣBᵢ objects."""
        memories = list(memories)
        if len(memories) == 1:
            return memories[0]
        segment = None if memories[0].segment is None else MemoryTokens.concat([m.segment for m in memories], dim=0)  # type: ignore[misc]
        return cls(MemoryTokens.concat([m.track for m in memories], dim=0), segment, memories[0].frame_tokens)

    @property
    def num_frames(self) -> int:
        return self.track.value.shape[1] // self.frame_tokens

    @property
    def batch_size(self) -> int:
        return self.track.value.shape[0]


@dataclass
class QMRAOutput:
    """Predictions for one query frame, B×2×H×W logits (background, object) at the input size.

    - ``track_logits``: stage 1 — the box map (a mask for ``2stage-noalign``); None for ``1stage``.
    - ``mask_logits``: stage 2 — the mask Sq (for ``1stage``: its single prediction).
    - ``refined_logits``: the CRM's refined mask Sr; None without a CRM.
    - ``query_prior``: B×1×H×W, the stage-2 prior Mq (filled rectangle of stage 1); None for ``1stage``.
    - ``query_encoding``: the stage-2 encoder features of the query at the padded size. When
      ``QMRA.config.stage2_encoding_is_memory`` this is exactly ``fm(query, query_prior)``, ready
      for :meth:`QMRA.memorize`.
    - ``track_target``: what stage 1 is trained against, ``"box"`` or ``"mask"`` (None for ``1stage``).
    """

    mask_logits: torch.Tensor
    track_logits: torch.Tensor | None = None
    refined_logits: torch.Tensor | None = None
    query_prior: torch.Tensor | None = None
    query_encoding: BackboneFeatures | None = None
    track_target: str | None = None

    @property
    def logits(self) -> torch.Tensor:
        """The network's final mask logits: the refined mask where there is one, else Sq."""
        return self.mask_logits if self.refined_logits is None else self.refined_logits

    def probability(self) -> torch.Tensor:
        """B×1×H×W object probability of the final mask."""
        return torch.softmax(self.logits, dim=1)[:, 1:2]


class QMRA(nn.Module):
    """Query-Memory Re-Aggregation network (Lin et al., AAAI 2021). See the module docstring."""

    def __init__(self, config: ModelConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or ModelConfig()
        self.query_encoder = ResNetTrunk(config.backbone, in_channels=3)
        self.memory_encoder = ResNetTrunk(config.backbone, in_channels=4)
        # f_q^r of Eq. 3: its own encoder for the 2stage-NoSiam ablation.
        self.prior_encoder = None if config.siamese or not config.two_stage else ResNetTrunk(config.backbone, in_channels=4)
        r2_channels, r3_channels, r4_channels = self.query_encoder.channels

        def aggregation() -> QueryMemoryAggregation:
            return QueryMemoryAggregation(
                r4_channels,
                config.key_channels,
                config.value_channels,
                config.key_value_kernel_size,
                use_memory_read=config.uses_memory_read,
                use_bca=config.uses_bca,
                bca_reduction=config.bca_reduction,
            )

        def decoder() -> Decoder:
            return Decoder(2 * config.value_channels, r3_channels, r2_channels, config.decoder_channels)

        self.track_aggregation = aggregation()
        self.track_decoder = decoder()
        self.segment_aggregation = aggregation() if config.two_stage else None
        self.segment_decoder = decoder() if config.two_stage else None
        self.crm = (
            CascadedRefinementModule(2 * config.value_channels, r3_channels, r2_channels, config.decoder_channels, config.crm_coordinates)
            if config.uses_crm
            else None
        )
        self.batchnorm_frozen = False
        self.freeze_batchnorm(config.freeze_batchnorm)

    # ------------------------------------------------------------------ set-up

    def freeze_batchnorm(self, frozen: bool = True) -> None:
        """Keep every BatchNorm's statistics and affine parameters fixed (``True``) or train them."""
        self.batchnorm_frozen = frozen
        for module in self.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.weight.requires_grad_(not frozen)
                module.bias.requires_grad_(not frozen)
        self.train(self.training)

    def train(self, mode: bool = True) -> "QMRA":
        super().train(mode)
        if self.batchnorm_frozen:
            for module in self.modules():
                if isinstance(module, nn.BatchNorm2d):
                    module.eval()
        return self

    def load_backbone_weights(self, source: str | Path | Mapping[str, torch.Tensor]) -> "BackboneLoadReport":
        """Load a torchvision ResNet state dict (file or mapping) into every encoder; see :mod:`qmra.model.weights`."""
        return load_backbone_weights(self.encoders(), source)

    def encoders(self) -> dict[str, ResNetTrunk]:
        encoders = {"query_encoder": self.query_encoder, "memory_encoder": self.memory_encoder}
        if self.prior_encoder is not None:
            encoders["prior_encoder"] = self.prior_encoder
        return encoders

    # ------------------------------------------------------------------ per-frame parts

    @staticmethod
    def prepare(image: torch.Tensor) -> tuple[torch.Tensor, Padding]:
        """RGB in [0, 1], ...×3×H×W → normalised, padded to multiples of 16, and the :class:`Padding`."""
        padding = Padding.for_size(image.shape[-2], image.shape[-1])
        return prepare_image(image, padding), padding

    def encode_query(self, image: torch.Tensor) -> BackboneFeatures:
        """fq: prepared image B×3×H'×W' → features. Does not depend on the object: share it."""
        _check_padded(image)
        with record_function("qmra/encoders"):
            return self.query_encoder(image)

    def encode_memory(self, image: torch.Tensor, box_map: torch.Tensor) -> BackboneFeatures:
        """fm: prepared image B×3×H'×W' (or 1×3×H'×W', shared) and box map B×1×H'×W' in [0, 1] → features."""
        _check_padded(image)
        with record_function("qmra/encoders"):
            return self.memory_encoder(torch.cat([image.expand(box_map.shape[0], -1, -1, -1), box_map.to(image.dtype)], dim=1))

    def memorize(self, features: BackboneFeatures) -> MemoryFrame:
        """Memory-encoder features of one frame → its keys and values for both stages (B×C×h×w)."""
        with record_function("qmra/memory_read"):
            track = self.track_aggregation.project_memory(features.r4)
            segment = None if self.segment_aggregation is None else self.segment_aggregation.project_memory(features.r4)
        return MemoryFrame(track, segment)

    def predict(
        self,
        image: torch.Tensor,
        padding: Padding,
        memory: Memory,
        query_features: BackboneFeatures | None = None,
        query_prior: torch.Tensor | None = None,
        prior_features: BackboneFeatures | None = None,
        attention: str = "auto",
        folded_crm: FoldedCRMInput | None = None,
    ) -> QMRAOutput:
        """Predict one query frame for B objects.

        image: prepared query 1×3×H'×W' (shared by all objects) or B×3×H'×W'; padding: from
        :meth:`prepare`; memory: B objects' T frames; query_features: ``encode_query(image)`` if
        already computed; query_prior: B×1×H×W to use instead of the stage-1 prediction (the
        user's box on an object's first frame, or the true box in training); prior_features: the
        stage-2 encoder's features of (image, query_prior) if already computed (an object's first
        frame, whose memory encoding is exactly that); attention: the Memory Read's kernel
        (:func:`qmra.model.qma.memory_read`); folded_crm: ``self.crm.fold()`` made once for many
        frames (the same result with less work), or None. Returns logits at the unpadded size H×W.
        """
        config = self.config
        batch = memory.batch_size
        if prior_features is not None and (query_prior is None or self.prior_encoder is not None):
            raise ValueError("prior_features need the query_prior they encode, and the siamese stage-2 encoder")
        if query_features is None:
            query_features = self.encode_query(image)
        with record_function("qmra/memory_read"):
            track_aggregated = self.track_aggregation(query_features.r4, memory.track, attention)
        with record_function("qmra/decoders"):
            track_logits = self.track_decoder(track_aggregated, query_features.r3, query_features.r2)
        if not config.two_stage:
            return QMRAOutput(mask_logits=padding.crop(track_logits))

        if query_prior is None:
            track_probability = torch.softmax(padding.crop(track_logits), dim=1)[:, 1:2]
            make_prior = rectangle_prior if config.stage1_predicts_box else mask_prior
            query_prior = make_prior(track_probability.detach(), config.prior_threshold)
        elif query_prior.shape != (batch, 1, padding.height, padding.width):
            raise ValueError(f"query_prior must be {batch}x1x{padding.height}x{padding.width}, got {tuple(query_prior.shape)}")
        if prior_features is not None:
            segment_features = prior_features
        else:
            padded_prior = padding.pad(query_prior).to(image.dtype)
            encoder = self.memory_encoder if self.prior_encoder is None else self.prior_encoder
            with record_function("qmra/encoders"):
                if image.shape[0] == 1 and batch > 1:  # several objects on one frame: its RGB conv1 once
                    segment_features = encoder.forward_shared_image(image, padded_prior)
                else:
                    segment_features = encoder(torch.cat([image.expand(batch, -1, -1, -1), padded_prior], dim=1))

        assert self.segment_aggregation is not None and self.segment_decoder is not None and memory.segment is not None
        with record_function("qmra/memory_read"):
            segment_aggregated = self.segment_aggregation(segment_features.r4, memory.segment, attention)
        with record_function("qmra/decoders"):
            mask_logits = self.segment_decoder(segment_aggregated, segment_features.r3, segment_features.r2)
        refined_logits = None
        if self.crm is not None:
            with record_function("qmra/crm"):
                refined_logits = self.crm(
                    track_aggregated,
                    segment_aggregated,
                    torch.softmax(track_logits, dim=1)[:, 1:2],
                    torch.softmax(mask_logits, dim=1)[:, 1:2],
                    segment_features.r3,
                    segment_features.r2,
                    folded=folded_crm,
                )
        return QMRAOutput(
            mask_logits=padding.crop(mask_logits),
            track_logits=padding.crop(track_logits),
            refined_logits=None if refined_logits is None else padding.crop(refined_logits),
            query_prior=query_prior,
            query_encoding=segment_features,
            track_target="box" if config.stage1_predicts_box else "mask",
        )

    # ------------------------------------------------------------------ training forward

    def build_memory(self, images: torch.Tensor, box_maps: torch.Tensor, padding: Padding) -> Memory:
        """Encode T memory frames at once: images B×T×3×H×W in [0, 1], box maps B×T×1×H×W → Memory."""
        batch, frames = images.shape[:2]
        prepared = prepare_image(images.flatten(0, 1), padding)
        features = self.encode_memory(prepared, padding.pad(box_maps.flatten(0, 1)))
        flat = self.memorize(features)

        def tokens(maps: KeyValueMaps) -> MemoryTokens:
            key = None if maps.key is None else maps.key.unflatten(0, (batch, frames))
            return MemoryTokens.from_maps(key, maps.value.unflatten(0, (batch, frames)))

        h, w = flat.track.value.shape[-2:]
        return Memory(tokens(flat.track), None if flat.segment is None else tokens(flat.segment), h * w)

    def forward(
        self,
        memory_images: torch.Tensor,
        memory_box_maps: torch.Tensor,
        query_image: torch.Tensor,
        query_prior: torch.Tensor | None = None,
    ) -> QMRAOutput:
        """memory_images B×T×3×H×W (RGB in [0, 1]), memory_box_maps B×T×1×H×W, query_image B×3×H×W.

        Any H×W: inputs are padded to multiples of 16 and the logits cropped back.
        """
        if memory_images.dim() != 5 or memory_images.shape[2] != 3:
            raise ValueError(f"memory_images must be B×T×3×H×W, got {tuple(memory_images.shape)}")
        batch, frames, _, height, width = memory_images.shape
        if memory_box_maps.shape != (batch, frames, 1, height, width):
            raise ValueError(f"memory_box_maps must be {batch}x{frames}x1x{height}x{width}, got {tuple(memory_box_maps.shape)}")
        if query_image.shape != (batch, 3, height, width):
            raise ValueError(f"query_image must be {batch}x3x{height}x{width}, got {tuple(query_image.shape)}")
        padding = Padding.for_size(height, width)
        memory = self.build_memory(memory_images, memory_box_maps, padding)
        return self.predict(prepare_image(query_image, padding), padding, memory, query_prior=query_prior)


def _check_padded(image: torch.Tensor) -> None:
    if image.dim() != 4 or image.shape[-2] % STRIDE or image.shape[-1] % STRIDE:
        raise ValueError(f"expected a prepared B×C×H×W image with H, W multiples of {STRIDE}, got {tuple(image.shape)}")

