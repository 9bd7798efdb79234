"""Which memory bank, and which row of its tensors, holds each tracked object."""

from __future__ import annotations

from collections import defaultdict

from qmra.inference.memory import MemoryBank


class ObjectTable:
    """Which memory bank, and which row of its tensors, holds each tracked object (user ids 1..255).

    Objects that start on the same frame share a bank (their rows are one batch); the session runs
    banks that hold equally many frames (or static banks, any) as one batch. Like Cutie's ObjectManager, it is the one
    place that maps user ids to tensor rows.
    """

    def __init__(self) -> None:
        self.banks: list[MemoryBank] = []

    @property
    def ids(self) -> list[int]:
        return sorted(i for bank in self.banks for i in bank.object_ids)

    def bank_of(self, object_id: int) -> MemoryBank | None:
        return next((bank for bank in self.banks if object_id in bank.object_ids), None)

    def row(self, object_id: int) -> tuple[MemoryBank, int]:
        """The bank that holds ``object_id`` and its row in that bank's tensors."""
        bank = self.bank_of(object_id)
        if bank is None:
            raise KeyError(object_id)
        return bank, bank.object_ids.index(object_id)

    def add(self, bank: MemoryBank) -> None:
        self.banks.append(bank)

    def remove(self, object_id: int) -> None:
        """Forget an object's memory (nothing happens for an object not tracked)."""
        bank = self.bank_of(object_id)
        if bank is not None:
            bank.remove(object_id)
            if not bank.object_ids:
                self.banks.remove(bank)

    def clear(self) -> None:
        self.banks.clear()

    def batches(self) -> list[list[MemoryBank]]:
        """The banks in groups that run as one batch: equally many memory frames, or all static banks
        (they read all their slots, so they have one shape whatever they hold)."""
        groups: dict[int | str, list[MemoryBank]] = defaultdict(list)
        for bank in self.banks:
            groups["static" if bank.static else bank.num_frames].append(bank)
        return list(groups.values())

    def nbytes(self) -> int:
        return sum(bank.nbytes() for bank in self.banks)
