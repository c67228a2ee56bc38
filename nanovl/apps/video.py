"""Video Q&A on the public LLM API: frames + transcript in one prompt, follow-ups on a saved prefix.

    session = VideoSession(llm, "talk.mp4", VideoOptions(reuse_prefix=True))
    bullets, answer = session.summarize(5)
    print(session.ask("Who speaks first?").text)   # reuses the video's saved state

The audio track is transcribed (faster-whisper) and its lines are placed between the frames they
follow (the video part's "transcript" option). A video whose frames and transcript exceed the
context is split into segments (long_video.py); each segment is asked alone and the answers are
merged (by time, or by one more text-only call for free-form answers).

Summaries come in two styles. "grounded" (the default) asks the question the tiny model was
trained on for the frames, the timed events ("Describe the events with timestamps.",
schema-constrained JSON), quotes what the narrator says from the transcript itself, and lays
both out as time-ordered bullets; segments need no model merge. (It used to ask the model "What
does the narrator say?": the tiny model answered with the sentence's form and another value,
"the room number is 12" for "81". Repeating a transcript adds only errors, so it is quoted.)
"free" asks for N bullets in one prompt and merges segment summaries with a text-only call,
which suits large instruction-tuned checkpoints.
"""
from __future__ import annotations

import re
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from tqdm import tqdm

from nanovl.apps.clips import cut_clips
from nanovl.apps.long_video import fit_parts, frame_text_costs, merge_prompt, plan_segments
from nanovl.inputs.audio import has_audio
from nanovl.inputs.transcript import Transcript
from nanovl.inputs.video import check_sampling, probe_video, sample_times
from nanovl.sampling_params import SamplingParams

SUMMARY_PROMPT = "Summarize the video in {n} bullet points, using both what is shown and what is said."
SUMMARY_STYLES = ("grounded", "free")
# tokens kept free for the question, the chat template and earlier turns of a conversation
QUESTION_RESERVE = 64
_BULLET = re.compile(r"^\s*(?:[-*\u2022]|\d+[.)])\s+(.*\S)")


@dataclass
class VideoOptions:
    """How a video is turned into a prompt and answered.

    fps / max_frames: frame sampling; pruning_rate: EVS rate (None = the model's default);
    use_audio: transcribe the audio track; asr_model: Whisper model folder or name (None = the
    bundled tiny.en); max_context: prompt + answer tokens allowed (None = the model's length);
    reuse_prefix: save each segment's video state so follow-up questions skip it.
    summary: "grounded" (events + narration questions) or "free" (one summary prompt), see above.
    """

    fps: float = 2.0
    max_frames: int = 128
    pruning_rate: float | None = None
    use_audio: bool = True
    asr_model: str | None = None
    max_context: int | None = None
    max_tokens: int = 512
    temperature: float = 0.0
    seed: int | None = None
    enable_thinking: bool = False
    reuse_prefix: bool = False
    summary: str = "grounded"

    def __post_init__(self) -> None:
        if self.summary not in SUMMARY_STYLES:
            raise ValueError(f"summary style must be one of {SUMMARY_STYLES}, got {self.summary!r}")
        # checked here, not at sampling time, so bad values fail before speech recognition runs
        check_sampling(self.fps, self.max_frames)


@dataclass
class VideoSegment:
    """A stretch of the video that is prompted on its own.

    `part` is the video content part; `offset` turns the model's times into media times (the clip
    of a segment starts its own clock at 0). `prefix` is the saved state of the video prompt.
    """

    start: float
    end: float
    part: dict[str, Any]
    offset: float
    num_tokens: int
    prefix: Any = None
    history: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class Answer:
    """One question's answer; for a segmented video, `parts` holds (start, end, text) per segment."""

    text: str
    parts: list[tuple[float, float, str]]
    outputs: list[Any]
    prefix_seconds: float = 0.0
    answer_seconds: float = 0.0
    num_cached_tokens: int = 0


def context_length(llm) -> int:
    """The model's prompt + output limit."""
    # NOTE: read from the engine until LLM exposes it (see the apps report)
    return int(getattr(llm, "max_model_len", None) or llm.engine.max_model_len)


def transcribe(path: str, asr_model: str | None = None) -> Transcript | None:
    """The speech of a media file (None when it has no audio track)."""
    if not has_audio(path):
        return None
    from nanovl.inputs.asr import SpeechRecognizer

    return SpeechRecognizer(asr_model).transcribe(path)


def parse_bullets(text: str, limit: int | None = None) -> list[str]:
    """Bullet points of a model answer ("- x", "* x", "1. x"); plain lines when none is marked."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    marked = [m.group(1) for m in map(_BULLET.match, lines) if m]
    bullets = marked or [ln.strip() for ln in lines]
    return bullets[:limit] if limit is not None else bullets


class VideoSession:
    """A video ready to be asked about.

    Args:
        llm: nanovl.llm.LLM with a vision-language model.
        path: local video file (URLs are fetched by the caller, see fetch.py).
        options: VideoOptions.
        transcript: the speech if already known (skips ASR); None transcribes when use_audio.
        progress: tqdm bars on stderr for segmented videos.
    """

    def __init__(self, llm, path: str, options: VideoOptions | None = None, *,
                 transcript: Transcript | None = None, progress: bool = True) -> None:
        self.llm, self.path = llm, str(path)
        self.options = options or VideoOptions()
        self.progress = progress
        self.info = probe_video(self.path)
        if transcript is None and self.options.use_audio:
            transcript = transcribe(self.path, self.options.asr_model)
        self.transcript = transcript
        self.context = min(context_length(llm), self.options.max_context or sys.maxsize)
        self.segments = self._plan()
        # time spent computing saved video prefixes (what each later follow-up does not redo)
        self.prefix_seconds = 0.0

    # ------------------------------------------------------------------ asking
    def ask(self, question: str, *, max_tokens: int | None = None) -> Answer:
        """Answer `question` about the whole video (per segment, then merged)."""
        outs, prefix_s, answer_s = self.ask_segments(question, max_tokens=max_tokens)
        parts = [(seg.start, seg.end, out.text.strip()) for seg, out in zip(self.segments, outs)]
        text = parts[0][2]
        if len(parts) > 1:
            t0 = time.perf_counter()
            text = self._merge(question, parts, max_tokens=max_tokens)
            answer_s += time.perf_counter() - t0
        return Answer(text, parts, outs, prefix_s, answer_s, sum(o.num_cached_tokens for o in outs))

    def summarize(self, bullets: int = 5) -> tuple[list[str], Answer]:
        """`bullets` bullet points about the whole video, drawing on frames and speech."""
        if bullets < 1:
            raise ValueError(f"bullets must be >= 1, got {bullets}")
        if self.options.summary == "grounded":
            return self._grounded_summary(bullets)
        question = SUMMARY_PROMPT.format(n=bullets)
        outs, prefix_s, answer_s = self.ask_segments(question, remember=False)
        parts = [(seg.start, seg.end, out.text.strip()) for seg, out in zip(self.segments, outs)]
        points = parse_bullets(parts[0][2], bullets)
        if len(parts) > 1:
            t0 = time.perf_counter()
            merged = self._merge(question, parts, bullets=bullets)
            answer_s += time.perf_counter() - t0
            # a merge that lost the bullet form falls back to the parts' own first points
            points = parse_bullets(merged, bullets) or _round_robin(
                [parse_bullets(p[2]) for p in parts], bullets)
        text = "\n".join(f"- {p}" for p in points)
        return points, Answer(text, parts, outs, prefix_s, answer_s, sum(o.num_cached_tokens for o in outs))

    def _grounded_summary(self, bullets: int) -> tuple[list[str], Answer]:
        """Timed events of every segment plus its transcript lines, quoted, by time.

        The narration is kept first when there are more points than `bullets` (it is the one
        source the frames cannot stand in for), then the earliest events.
        """
        from nanovl.apps import captions as cap

        merged, (outs, prefix_s, answer_s) = cap.ask_captions(self)
        timed: list[tuple[float, int, str, int]] = []  # (media time, priority, bullet, segment index)
        for c in merged:
            # an event joined across a cut is listed under the segment where it starts
            i = next(i for i, seg in enumerate(self.segments) if c.start < seg.end or seg is self.segments[-1])
            timed.append((c.start, 1, f"{c.start:.1f}-{c.end:.1f} s: {c.caption}", i))
        for i, seg in enumerate(self.segments):
            lines = seg.part.get("transcript")
            if lines:  # one bullet per segment, as many events as bullets allow beside it
                heard = lines[0]["start"] + seg.offset
                said = " ".join(" ".join(line["text"].split()) for line in lines)
                timed.append((heard, 0, f"{heard:.1f} s, narration: {said}", i))
        chosen = pick_points(timed, bullets)
        points = [b for _, _, b, _ in chosen]
        parts = [(seg.start, seg.end, "\n".join(f"- {b}" for _, _, b, j in chosen if j == i))
                 for i, seg in enumerate(self.segments)]
        text = "\n".join(f"- {p}" for p in points)
        return points, Answer(text, parts, outs, prefix_s, answer_s, sum(o.num_cached_tokens for o in outs))

    def ask_segments(self, question: str, *, response_format: dict | Callable[[VideoSegment], dict] | None = None,
                     max_tokens: int | None = None, segments: Sequence[VideoSegment] | None = None,
                     remember: bool = True) -> tuple[list, float, float]:
        """Ask every segment (or `segments`); returns (RequestOutput per segment, prefix s, answer s).

        `response_format` may depend on the segment (a function of it). With `reuse_prefix`, a
        segment's video state is computed once (the first question pays for it, counted in prefix
        seconds) and later questions start from it. Free-text answers join the segment's history
        when `remember` (the user's conversation; a summary's own questions stay out of it).
        """
        outs, prefix_s, answer_s = [], 0.0, 0.0
        todo = list(self.segments if segments is None else segments)
        bar = tqdm(todo, desc="segments", unit="seg", file=sys.stderr,
                   disable=not self.progress or len(todo) == 1)
        for seg in bar:
            if self.options.reuse_prefix and seg.prefix is None:
                t0 = time.perf_counter()
                seg.prefix = self.llm.save_prefix(self.prefix_messages(seg))
                spent = time.perf_counter() - t0
                prefix_s += spent
                self.prefix_seconds += spent
            fmt = response_format(seg) if callable(response_format) else response_format
            params = self._params(max_tokens, fmt)
            t0 = time.perf_counter()
            messages = self.messages(seg, question, params.max_tokens)
            out = self.llm.chat(messages, params, prefix=seg.prefix)[0]
            answer_s += time.perf_counter() - t0
            if fmt is None and remember:
                seg.history.append((question, out.text.strip()))
            outs.append(out)
        return outs, prefix_s, answer_s

    # ---------------------------------------------------------------- messages
    def prefix_messages(self, seg: VideoSegment) -> list[dict]:
        """The conversation prefix every question about `seg` shares: the video alone."""
        return [{"role": "user", "content": [seg.part]}]

    def messages(self, seg: VideoSegment, question: str, max_tokens: int) -> list[dict]:
        """Video + earlier turns (as many as fit) + the new question."""
        count = self._count
        room = self.context - seg.num_tokens - max_tokens - count(question) - 16
        turns: list[tuple[str, str]] = []
        for q, a in reversed(seg.history):
            room -= count(q) + count(a) + 16
            if room < 0:
                break
            turns.insert(0, (q, a))
        if not turns:
            return [{"role": "user", "content": [seg.part, {"type": "text", "text": question}]}]
        msgs = [{"role": "user", "content": [seg.part, {"type": "text", "text": turns[0][0]}]},
                {"role": "assistant", "content": turns[0][1]}]
        for q, a in turns[1:]:
            msgs += [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
        return msgs + [{"role": "user", "content": question}]

    # --------------------------------------------------------------- internals
    def _count(self, text: str) -> int:
        return len(self.llm.tokenizer.encode(text))

    def _params(self, max_tokens: int | None, response_format: dict | None) -> SamplingParams:
        o = self.options
        return SamplingParams(temperature=o.temperature, seed=o.seed, max_tokens=max_tokens or o.max_tokens,
                              enable_thinking=o.enable_thinking, response_format=response_format)

    def _plan(self) -> list[VideoSegment]:
        o = self.options
        times = sample_times(self.info.duration, o.fps, o.max_frames)
        costs = frame_text_costs(times, self.transcript, self._count)
        budget = self.context - o.max_tokens - QUESTION_RESERVE

        def video_tokens(n: int) -> int:
            return self.llm.video_token_count(n, o.pruning_rate)

        plans = plan_segments(times, self.info.duration, costs, video_tokens, budget)
        part = {"type": "video", "video": self.path, "fps": o.fps, "max_frames": o.max_frames}
        if o.pruning_rate is not None:
            part["video_pruning_rate"] = o.pruning_rate
        if len(plans) == 1:
            return [VideoSegment(0.0, self.info.duration, self._with_speech(part, 0.0, None), 0.0,
                                 plans[0].num_tokens)]
        size = self.llm.processor.config.force_image_size
        clips = cut_clips(self.path, times, [(p.first, p.last) for p in plans], size)
        segments = []
        for plan, clip in zip(plans, clips):
            seg_part = {**part, "video": clip.data, "fps": 1.0 / clip.step, "max_frames": plan.num_samples}
            window = (plan.start, plan.end if plan is not plans[-1] else None)
            segments.append(VideoSegment(plan.start, plan.end, self._with_speech(seg_part, plan.start, window),
                                         plan.start, plan.num_tokens))
        return segments

    def _with_speech(self, part: dict, offset: float, window: tuple[float, float | None] | None) -> dict:
        """Attach the transcript lines that start in `window`, on the segment's own clock."""
        if self.transcript is None:
            return part
        segs = self.transcript.segments
        if window is not None:
            lo, hi = window
            # speech starting before the first frame belongs to the first segment
            segs = tuple(s for s in segs if (lo == 0.0 or s.start >= lo) and (hi is None or s.start < hi))
        speech = [{"start": max(0.0, s.start - offset), "end": max(0.0, s.end - offset), "text": s.text}
                  for s in segs if s.text.strip()]
        return {**part, "transcript": speech} if speech else part

    def _merge(self, question: str, parts: Sequence[tuple[float, float, str]], *, bullets: int | None = None,
               max_tokens: int | None = None) -> str:
        """One text-only call that turns the per-segment answers into one (parts shortened to fit)."""
        params = self._params(max_tokens, None)
        prompt = merge_prompt(question, parts, summary_bullets=bullets)
        answers = sum(self._count(p[2]) for p in parts)
        room = self.context - params.max_tokens - (self._count(prompt) - answers) - 32
        if room < answers:
            prompt = merge_prompt(question, fit_parts(parts, room, self._count), summary_bullets=bullets)
        return self.llm.chat([{"role": "user", "content": prompt}], params)[0].text.strip()


def pick_points(timed: Sequence[tuple[float, int, str, int]], limit: int) -> list[tuple[float, int, str, int]]:
    """The `limit` points of a grounded summary, in time order: lowest priority value first (0 =
    narration), then the earliest; each point is (media time, priority, text, segment index)."""
    return sorted(sorted(timed, key=lambda x: (x[1], x[0]))[:limit])


def _round_robin(lists: Sequence[Sequence[str]], limit: int) -> list[str]:
    out: list[str] = []
    for i in range(max((len(x) for x in lists), default=0)):
        out += [x[i] for x in lists if i < len(x)]
    return out[:limit]


def describe_timing(answer: Answer, session: VideoSession) -> str:
    """One line on where the time went: the saved video prefix vs this answer."""
    saved = [s.prefix for s in session.segments if s.prefix is not None]
    if not saved:
        return f"answer: {answer.answer_seconds:.2f} s"
    tokens = sum(h.num_tokens for h in saved)
    if answer.prefix_seconds:
        return (f"video prefix: {tokens} tokens computed once in {answer.prefix_seconds:.2f} s; "
                f"answer: {answer.answer_seconds:.2f} s")
    return (f"follow-up: {answer.answer_seconds:.2f} s, reusing the saved video prefix ({tokens} tokens, "
            f"{session.prefix_seconds:.2f} s to compute): ~{session.prefix_seconds:.2f} s saved")
