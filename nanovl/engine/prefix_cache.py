"""Prefix state reuse: start a request from a saved LMState instead of recomputing its prefix.

A hybrid model cannot rewind a Mamba state, so reuse is all-or-nothing at one saved point.
`PrefixHandle` holds the state after the first `num_tokens` prompt tokens of a saved prefix
(one less than the prefix, so a follow-up prompt always has at least one token to feed and
its last prefix token may tokenize differently). `match_prefix` checks that a new prompt
really starts with those tokens and the same media before the engine restores the state.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from nanovl.errors import InvalidRequestError

if TYPE_CHECKING:
    from nanovl.model.state import LMState
    from nanovl.processor import ProcessedPrompt


@dataclass(frozen=True)
class PrefixHandle:
    """A saved state and what it covers.

    Attributes:
        token_ids: final ids of the covered tokens (media spans with their true counts).
        layout_ids: the same tokens as the processor lays them out (what new prompts match on).
        media: (offset, end, digest) of each media item inside the covered tokens.
        state: LMState with one row, `seq_lens == [num_tokens]`.
    """

    token_ids: tuple[int, ...]
    layout_ids: tuple[int, ...]
    media: tuple[tuple[int, int, str], ...]
    state: "LMState" = field(repr=False, compare=False)

    @property
    def num_tokens(self) -> int:
        return len(self.token_ids)

    @property
    def nbytes(self) -> int:
        return self.state.nbytes()


def prefix_request(processed: "ProcessedPrompt") -> "ProcessedPrompt":
    """The prompt that `save_prefix` runs: all tokens but the last (see the module docstring).

    Raises InvalidRequestError when the prefix is too short or ends inside a media span.
    """
    from nanovl.processor import ProcessedPrompt

    ids = processed.prompt_token_ids
    if len(ids) < 2:
        raise InvalidRequestError(f"a saved prefix needs at least 2 tokens, got {len(ids)}")
    n = len(ids) - 1
    mm = processed.mm_input
    if mm is not None and any(it.end > n for it in mm.items):
        raise InvalidRequestError("a saved prefix may not end inside an image or video")
    return ProcessedPrompt(ids[:n], mm, processed.enable_thinking, processed.prompt_text)


def make_handle(layout_ids: list[int], final_ids: list[int], processed: "ProcessedPrompt",
                state: "LMState") -> PrefixHandle:
    """Build the handle once the prefix ran; `state` covers exactly `final_ids`."""
    if len(layout_ids) != len(final_ids) or int(state.seq_lens[0]) != len(final_ids):
        raise ValueError(f"prefix state covers {int(state.seq_lens[0])} tokens, ids have "
                         f"{len(final_ids)} / {len(layout_ids)}")
    mm = processed.mm_input
    media = tuple((it.offset, it.end, it.digest()) for it in mm.items) if mm else ()
    return PrefixHandle(tuple(final_ids), tuple(layout_ids), media, state)


def match_prefix(handle: PrefixHandle, processed: "ProcessedPrompt") -> None:
    """Raise InvalidRequestError unless `processed` starts with the handle's tokens and media."""
    n = handle.num_tokens
    ids = processed.prompt_token_ids
    if len(ids) <= n:
        raise InvalidRequestError(f"the prompt ({len(ids)} tokens) must be longer than the saved "
                                  f"prefix ({n} tokens)")
    if tuple(ids[:n]) != handle.layout_ids:
        first = next(i for i, (a, b) in enumerate(zip(ids, handle.layout_ids)) if a != b)
        raise InvalidRequestError(f"the prompt does not start with the saved prefix (tokens differ "
                                  f"from position {first} of {n})")
    items = processed.mm_input.items if processed.mm_input is not None else []
    inside = [it for it in items if it.offset < n]
    if any(it.end > n for it in inside):
        raise InvalidRequestError("a media item crosses the end of the saved prefix")
    mine = tuple((it.offset, it.end, it.digest()) for it in inside)
    if mine != handle.media:
        raise InvalidRequestError("the prompt's images/videos differ from the saved prefix's")
