"""Tokenizer of a checkpoint folder: tokenizer.json through the `tokenizers` library.

Special tokens and the chat template come from tokenizer_config.json (or chat_template.jinja /
chat_template.json beside it). Prompts are encoded with add_special_tokens=False (SPEC Part H);
added tokens such as `<image>` and `<SPECIAL_11>` always map to their single ids.
"""
from __future__ import annotations

import json
import re
from functools import cached_property
from pathlib import Path
from typing import Any, Iterable, Sequence

from tokenizers import AddedToken
from tokenizers import Tokenizer as _HFTokenizer

END_OF_TURN = "<SPECIAL_12>"
# Texts longer than this are encoded through the library's batch call, which releases the GIL: its
# single-text `encode` holds it, so a server's worker thread tokenizing a long prompt (3.6M chars:
# ~2 s here) froze every other thread, the event loop included. Short texts keep the faster call.
GIL_FREE_ENCODE_CHARS = 100_000
# special tokens that skip_special_tokens keeps in decoded text: the reasoning markers (the reasoning
# parser splits on them) and the tool-call markers (nanovl/tool_calls.py parses the calls between them)
KEPT_SPECIALS = frozenset({"<think>", "</think>", "<TOOLCALL>", "</TOOLCALL>"})
# attribute name -> token text of the multimodal and reasoning markers
MARKERS = {
    "image_token_id": "<image>",
    "img_start_token_id": "<img>",
    "img_end_token_id": "</img>",
    "video_token_id": "<video>",
    "think_start_token_id": "<think>",
    "think_end_token_id": "</think>",
}


class Tokenizer:
    """Text <-> ids for one checkpoint, plus its special-token ids and chat template."""

    def __init__(self, backend: _HFTokenizer, config: dict[str, Any] | None = None, *,
                 chat_template: str | None = None, extra_eos_ids: Iterable[int] = ()):
        self.backend = backend
        self.config = dict(config or {})
        self._register_added_tokens(self.config.get("added_tokens_decoder", {}))
        self.chat_template = chat_template
        self.bos_token = _token_text(self.config.get("bos_token"))
        self.eos_token = _token_text(self.config.get("eos_token"))
        self.unk_token = _token_text(self.config.get("unk_token"))
        self.pad_token = _token_text(self.config.get("pad_token"))
        self.bos_token_id = self._id_or_none(self.bos_token)
        self.eos_token_id = self._id_or_none(self.eos_token)
        self.unk_token_id = self._id_or_none(self.unk_token)
        self.pad_token_id = self._id_or_none(self.pad_token)
        for attr, text in MARKERS.items():
            setattr(self, attr, backend.token_to_id(text))
        eos = [self.eos_token_id, backend.token_to_id(END_OF_TURN), *extra_eos_ids]
        self.eos_token_ids: list[int] = list(dict.fromkeys(i for i in eos if i is not None))
        self._skip_ids = frozenset(i for i, t in backend.get_added_tokens_decoder().items()
                                   if t.special and t.content not in KEPT_SPECIALS)

    @classmethod
    def from_dir(cls, path: str | Path) -> "Tokenizer":
        """Load tokenizer.json (+ tokenizer_config.json, chat template, generation_config.json)."""
        root = Path(path)
        if not (root / "tokenizer.json").is_file():
            raise ValueError(f"no tokenizer.json in {root}")
        try:
            backend = _HFTokenizer.from_file(str(root / "tokenizer.json"))
        except Exception as err:  # the tokenizers library raises a bare Exception for a malformed file
            raise ValueError(f"{root / 'tokenizer.json'} is not a readable tokenizer: {err}") from None
        config = _read_json(root / "tokenizer_config.json") or {}
        gen = _read_json(root / "generation_config.json") or {}
        gen_eos = gen.get("eos_token_id")
        extra = [gen_eos] if isinstance(gen_eos, int) else list(gen_eos or [])
        return cls(backend, config, chat_template=_find_chat_template(root, config), extra_eos_ids=extra)

    @property
    def vocab_size(self) -> int:
        """Number of ids, added tokens included (the model's vocab may be padded beyond it)."""
        return self.backend.get_vocab_size(with_added_tokens=True)

    @property
    def special_tokens(self) -> dict[str, str | None]:
        """bos/eos/unk/pad token texts, e.g. as extra variables for a chat template."""
        return {"bos_token": self.bos_token, "eos_token": self.eos_token,
                "unk_token": self.unk_token, "pad_token": self.pad_token}

    def encode(self, text: str, *, add_special_tokens: bool = False) -> list[int]:
        """Text -> ids. Added tokens in the text (`<image>`, `<SPECIAL_11>`) become single ids."""
        if not isinstance(text, str):
            raise ValueError(f"encode expects a str, got {type(text).__name__}")
        # NOTE: the Rust library splits added tokens out in linear time (30k `<image>` ~25 ms,
        # checked by a test), so long placeholder runs need no splitting of our own
        if len(text) > GIL_FREE_ENCODE_CHARS:
            return self.encode_batch([text], add_special_tokens=add_special_tokens)[0]
        return self.backend.encode(text, add_special_tokens=add_special_tokens).ids

    def encode_batch(self, texts: Sequence[str], *, add_special_tokens: bool = False) -> list[list[int]]:
        """Several texts at once (the library runs them in parallel)."""
        return [e.ids for e in self.backend.encode_batch(list(texts), add_special_tokens=add_special_tokens)]

    def decode(self, ids: Sequence[int], *, skip_special_tokens: bool = False) -> str:
        """Ids -> text. Skipping specials keeps `<think>`/`</think>` so reasoning stays visible."""
        ids = [int(i) for i in ids]
        if skip_special_tokens:
            ids = [i for i in ids if i not in self._skip_ids]
        return self.backend.decode(ids, skip_special_tokens=False)

    def is_special(self, token_id: int) -> bool:
        """True for ids that `decode(..., skip_special_tokens=True)` drops."""
        return token_id in self._skip_ids

    def token_to_id(self, token: str) -> int | None:
        return self.backend.token_to_id(token)

    def id_to_token(self, token_id: int) -> str | None:
        return self.backend.id_to_token(token_id)

    def token_bytes(self, token_id: int) -> bytes:
        """The raw bytes one token adds to decoded text, even when they are only part of a character
        (decode([id]) gives U+FFFD for those). Byte-level BPE vocabularies spell bytes as GPT-2's
        printable characters; sentencepiece-style vocabularies spell a fallback byte `<0xHH>`."""
        text = self.decode([token_id])
        if "\ufffd" not in text:
            return text.encode("utf-8")
        piece = self.backend.id_to_token(int(token_id)) or ""
        if (m := _BYTE_FALLBACK.fullmatch(piece)) is not None:
            return bytes([int(m.group(1), 16)])
        if self._byte_level and piece and all(ch in _UNICODE_TO_BYTE for ch in piece):
            return bytes(_UNICODE_TO_BYTE[ch] for ch in piece)
        return text.encode("utf-8")

    @cached_property
    def _byte_level(self) -> bool:
        return "ByteLevel" in repr(self.backend.decoder)

    def to_json(self) -> str:
        """The serialized tokenizer (what llguidance's LLTokenizer takes)."""
        return self.backend.to_str()

    def _id_or_none(self, token: str | None) -> int | None:
        return None if token is None else self.backend.token_to_id(token)

    def _register_added_tokens(self, decoder: dict[str, Any]) -> None:
        """Add tokens listed in tokenizer_config.json but missing from tokenizer.json."""
        for key, entry in sorted(decoder.items(), key=lambda kv: int(kv[0])):
            content = _token_text(entry)
            if content is None or self.backend.token_to_id(content) is not None:
                continue
            next_id = self.backend.get_vocab_size(with_added_tokens=True)
            if int(key) != next_id:
                raise ValueError(f"added token {content!r} wants id {key}, but the next free id is {next_id}")
            token = AddedToken(content, normalized=False, special=bool(entry.get("special", True)))
            if token.special:
                self.backend.add_special_tokens([token])
            else:
                self.backend.add_tokens([token])


def _byte_to_unicode() -> dict[int, str]:
    """GPT-2's byte-level alphabet: printable bytes stand for themselves, the other 68 bytes
    (controls, space, DEL, NBSP, soft hyphen...) for the code points from 256 up, in byte order."""
    printable = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAC + 1), *range(0xAE, 0xFF + 1)]
    table = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + extra)
            extra += 1
    return table


_UNICODE_TO_BYTE = {ch: b for b, ch in _byte_to_unicode().items()}
_BYTE_FALLBACK = re.compile(r"<0x([0-9A-Fa-f]{2})>")


def _token_text(value: Any) -> str | None:
    """tokenizer_config writes a special token as a string or as {"content": ...}."""
    if isinstance(value, dict):
        return value.get("content")
    return value if isinstance(value, str) else None


def _read_json(path: Path) -> dict | None:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON: {err}") from err


def _find_chat_template(root: Path, config: dict[str, Any]) -> str | None:
    """chat_template.jinja, then chat_template.json, then tokenizer_config.json's field."""
    if (root / "chat_template.jinja").is_file():
        return (root / "chat_template.jinja").read_text(encoding="utf-8")
    side = _read_json(root / "chat_template.json")
    if side and isinstance(side.get("chat_template"), str):
        return side["chat_template"]
    template = config.get("chat_template")
    if isinstance(template, list):
        # a list of named templates: take "default" (else the first)
        named = {t.get("name"): t.get("template") for t in template if isinstance(t, dict)}
        template = named.get("default", next(iter(named.values()), None))
    return template if isinstance(template, str) else None
