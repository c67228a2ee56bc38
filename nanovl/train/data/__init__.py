"""Synthetic curriculum for the tiny model: documents, charts, image pairs, videos with narration, reasoning.

Every generator takes a seed and returns a `Sample` with an exact target and structured truth.
"""
from .charts import make_chart_sample
from .common import Sample
from .documents import make_document_sample
from .mixture import HELD_OUT_SEED_OFFSET, TASKS, held_out_dataset, make_dataset
from .multi_image import make_multi_image_sample
from .reasoning import make_reasoning_sample
from .videos import SpeechUnavailableError, make_video_sample

__all__ = [
    "HELD_OUT_SEED_OFFSET", "TASKS", "Sample", "SpeechUnavailableError", "held_out_dataset", "make_chart_sample",
    "make_dataset", "make_document_sample", "make_multi_image_sample", "make_reasoning_sample",
    "make_video_sample",
]
