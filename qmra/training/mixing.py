"""Several clip sources drawn by weight, in an order fixed by (seed, sample number)."""

from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from qmra.data.clips import NoUsableClip

#: How many clips :meth:`MixedClips.__getitem__` draws before it gives up: a source whose clip
#: cannot be made (all its own attempts rejected, as a small target at a small size can be) is
#: drawn again rather than ending a long run.
DRAWS = 10


class MixedClips(Dataset):
    """Sample number n → a source chosen by weight → that source's clip, all drawn from (seed, n).

    Indexing by the global sample number makes the data order a pure function of the step, so a
    resumed run sees exactly the clips the uninterrupted run would have seen.
    """

    def __init__(self, sources: Sequence[Dataset], weights: Sequence[float], seed: int) -> None:
        if not sources or len(sources) != len(weights):
            raise ValueError("one weight per source")
        self.sources = list(sources)
        total = float(sum(weights))
        self.probabilities = np.array([w / total for w in weights])
        self.seed = seed

    def __len__(self) -> int:
        return 2**62

    def __getitem__(self, number: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng([self.seed, 0xC11D, number])
        for _ in range(DRAWS - 1):
            try:
                return self._draw(rng)
            except NoUsableClip:
                pass
        return self._draw(rng)

    def _draw(self, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        """One draw from ``rng``: a source by weight, then one of its clips (its NoUsableClip where it cannot make it)."""
        source = self.sources[int(rng.choice(len(self.sources), p=self.probabilities))]
        clip = source[int(rng.integers(len(source)))]  # type: ignore[arg-type]
        clip.pop("frame_indices", None)  # only video clips have it; batches need the same keys
        return clip

    def check(self, names: Sequence[str], clips: int = 4) -> None:
        """Draw ``clips`` clips from each source (named by ``names``), so that a source that cannot
        make any (its targets too small at this clip size, say) stops the run before it starts, with
        a :class:`NoUsableClip` that names it."""
        for source, name in zip(self.sources, names):
            for index in range(clips):
                try:
                    source[index]
                except NoUsableClip as error:
                    raise NoUsableClip(f"--data {name}: {error}; train at a larger --size, or with larger targets") from None


class SampleNumbers(Sampler[int]):
    """Sample numbers start, start+1, ... for one process, or every world-th one for rank r."""

    def __init__(self, start: int, rank: int = 0, world_size: int = 1) -> None:
        self.start, self.rank, self.world_size = start, rank, world_size

    def __iter__(self) -> Iterator[int]:
        number = self.start + self.rank
        while True:
            yield number
            number += self.world_size

    def __len__(self) -> int:
        return 2**62
