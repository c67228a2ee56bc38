"""A video part with "transcript": "auto": its audio is transcribed (faster-whisper, the bundled
tiny.en) and the speech rides with the frames, in the Python API and through the server.

Run: pytest tests/inputs/test_video_auto_transcript.py
"""
from __future__ import annotations

import base64

import pytest
from helpers import write_gray_mp4

from nanovl.llm import LLM
from nanovl.sampling_params import SamplingParams
from nanovl.train.data.videos import has_speech, make_video_sample

pytestmark = pytest.mark.skipif(not has_speech(), reason="espeak-ng is not installed (narrated videos)")
GREEDY = SamplingParams(temperature=0, max_tokens=12)


@pytest.fixture(scope="module")
def llm():
    return LLM()


@pytest.fixture(scope="module")
def narrated(tmp_path_factory):
    # a held-out video whose narrator says "The room number is 12."
    sample = make_video_sample(2**64 + 5, tmp_path_factory.mktemp("narrated"))
    return sample.video_path, sample.truth["narration"]


def _ask(url, question: str, **options) -> list[dict]:
    return [{"role": "user", "content": [{"type": "video_url", "video_url": {"url": url, **options}},
                                         {"type": "text", "text": question}]}]


def _speech_lines(llm, messages) -> list[str]:
    ids = llm.processor.process_chat(messages).prompt_token_ids
    text = llm.tokenizer.decode([i for i in ids if i != llm.tokenizer.token_to_id("<image>")])
    return [line for line in text.split("\n") if line.startswith("Speech at")]


def test_the_narration_reaches_the_prompt_and_the_answer(llm, narrated):
    path, narration = narrated
    question = f"According to the narration, what is the {narration['key']}? /no_think"
    lines = _speech_lines(llm, _ask(path, question, transcript="auto"))
    assert len(lines) == 1 and narration["value"] in lines[0]
    assert _speech_lines(llm, _ask(path, question)) == []
    # the tiny model answers from the speech line; the frames alone do not tell it
    heard = llm.chat(_ask(path, question, transcript="auto"), GREEDY)[0].text
    assert heard == narration["value"]
    assert llm.chat(_ask(path, question), GREEDY)[0].text != narration["value"]


def test_bytes_and_a_silent_video(llm, narrated, tmp_path):
    path, narration = narrated
    uri = "data:video/mp4;base64," + base64.b64encode(open(path, "rb").read()).decode()
    assert _speech_lines(llm, _ask(uri, "What does the narrator say?", transcript="auto")) == \
        _speech_lines(llm, _ask(path, "What does the narrator say?", transcript="auto"))
    silent = write_gray_mp4(tmp_path / "silent.mp4", 8, 30)
    assert _speech_lines(llm, _ask(silent, "What happens?", transcript="auto")) == []


def test_nanovl_run_speech_flag(narrated, capsys):
    from nanovl import cli

    path, narration = narrated
    question = f"According to the narration, what is the {narration['key']}? /no_think"
    assert cli.main(["run", question, "--video", path, "--speech", "--max-tokens", "12"]) == 0
    assert capsys.readouterr().out.strip() == narration["value"]


def test_a_resent_video_is_transcribed_once(llm, narrated, monkeypatch):
    # chats resend their video with every turn; the speech of the same bytes is reused
    from nanovl.inputs import asr

    path, _ = narrated
    uri = "data:video/mp4;base64," + base64.b64encode(open(path, "rb").read()).decode()
    calls = []
    real = asr.SpeechRecognizer.transcribe

    def counting(self, audio, **kw):
        calls.append(1)
        return real(self, audio, **kw)

    monkeypatch.setattr(asr.SpeechRecognizer, "transcribe", counting)
    monkeypatch.setattr(asr, "_TRANSCRIPTS", type(asr._TRANSCRIPTS)())
    first = _speech_lines(llm, _ask(uri, "What does the narrator say?", transcript="auto"))
    again = _speech_lines(llm, _ask(uri, "And then?", transcript="auto"))
    assert first == again and len(first) == 1 and len(calls) == 1
