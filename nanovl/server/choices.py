"""Choices: the engine streams of one HTTP request (n samples, or several completion prompts).

`open` adds every request and waits for its first output, so add-time errors (context length,
full queue, bad schema) surface before any response header is sent. `stream` fans the
outputs in as (choice index, RequestOutput); leaving it early (client gone) aborts whatever
has not finished.
"""
from __future__ import annotations

import asyncio
from typing import Any, AsyncIterator, Sequence

from nanovl.engine.outputs import RequestOutput
from nanovl.sampling_params import SamplingParams


class Choices:
    """Started engine requests, one per choice, each primed with its first output."""

    def __init__(self, gens: list, firsts: list[RequestOutput]) -> None:
        self.gens = gens
        self.firsts = firsts

    @classmethod
    async def open(cls, engine, jobs: Sequence[tuple[Any, SamplingParams]]) -> "Choices":
        """Add every (prompt, params) job; raises the first add-time error after aborting the rest."""
        gens = [engine.generate(prompt, params) for prompt, params in jobs]
        try:
            firsts = await asyncio.gather(*(g.__anext__() for g in gens), return_exceptions=True)
        except BaseException:
            await _close(gens)
            raise
        errors = [f for f in firsts if isinstance(f, BaseException)]
        if errors:
            await _close(gens)
            raise errors[0]
        return cls(gens, list(firsts))

    def __len__(self) -> int:
        return len(self.gens)

    async def stream(self) -> AsyncIterator[tuple[int, RequestOutput]]:
        """Outputs of all choices as they come; each choice ends with a finished output."""
        queue: asyncio.Queue = asyncio.Queue()

        async def pump(i: int) -> None:
            try:
                await queue.put((i, self.firsts[i]))
                if not self.firsts[i].finished:
                    async for out in self.gens[i]:
                        await queue.put((i, out))
            except Exception as err:  # noqa: BLE001 - re-raised by the consumer below
                await queue.put((i, err))

        tasks = [asyncio.ensure_future(pump(i)) for i in range(len(self.gens))]
        try:
            remaining = len(tasks)
            while remaining:
                i, out = await queue.get()
                if isinstance(out, BaseException):
                    raise out
                remaining -= out.finished
                yield i, out
        finally:
            # cancelling a pump inside `async for` closes its engine stream, which aborts the request
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await _close(self.gens)

    async def finals(self) -> list[RequestOutput]:
        """Run every choice to the end; the finished outputs in choice order."""
        last: dict[int, RequestOutput] = {}
        async for i, out in self.stream():
            last[i] = out
        return [last[i] for i in range(len(self.gens))]

    async def aclose(self) -> None:
        await _close(self.gens)


async def _close(gens: list) -> None:
    for g in gens:
        try:
            await g.aclose()
        except RuntimeError:
            # still running in a cancelled task; that task's cancellation closes it
            pass
