"""CacheManager: the pool of per-request state slots (torch-free bookkeeping).

A slot is one row of the model runner's state store (Mamba conv/SSM state + attention K/V).
A running request holds exactly one slot from admission until it finishes or is aborted; the
freed slot ids are reported to the runner on the next step so it can reset that row.
"""
from __future__ import annotations


class CacheManager:
    """Hands out slot ids 0..num_slots-1; lowest free id first, so small batches stay dense."""

    def __init__(self, num_slots: int) -> None:
        if num_slots < 1:
            raise ValueError(f"num_slots must be >= 1, got {num_slots}")
        self.num_slots = num_slots
        self._free: list[int] = list(range(num_slots))
        self._owner: dict[int, str] = {}
        self._released: list[int] = []

    @property
    def num_free_slots(self) -> int:
        return len(self._free)

    @property
    def num_used_slots(self) -> int:
        return len(self._owner)

    def owner(self, slot: int) -> str | None:
        return self._owner.get(slot)

    def allocate(self, req_id: str) -> int:
        """Give `req_id` a free slot; ValueError when none is free (the scheduler checks first)."""
        if not self._free:
            raise ValueError(f"no free state slot for request {req_id!r} ({self.num_slots} in use)")
        slot = min(self._free)
        self._free.remove(slot)
        self._owner[slot] = req_id
        return slot

    def free(self, slot: int) -> None:
        """Return `slot` to the pool; it is reported once by `take_released()`."""
        if slot not in self._owner:
            raise ValueError(f"slot {slot} is not allocated")
        del self._owner[slot]
        self._free.append(slot)
        self._released.append(slot)

    def take_released(self) -> list[int]:
        """Slots freed since the last call (each reported once)."""
        out, self._released = self._released, []
        return out
