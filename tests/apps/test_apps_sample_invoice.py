"""The README's main command: `nanovl extract nanovl/assets/samples/invoice.png --schema invoice`.

The bundled sample is drawn by our document generator (see nanovl/assets/samples/README.md) and
its ground truth sits beside it. Any model prints schema-valid JSON (decoding is constrained);
the trained tiny model must print the ground truth itself.
"""
from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

from PIL import Image

import nanovl
from nanovl.apps.cli_apps import main
from nanovl.apps.schemas import load_schema, validation_errors

SAMPLES = Path(nanovl.__file__).parent / "assets" / "samples"
INVOICE = SAMPLES / "invoice.png"
REPO = Path(nanovl.__file__).parent.parent


def test_sample_is_small_and_its_truth_fits_the_schema():
    assert INVOICE.stat().st_size < 100_000
    assert Image.open(INVOICE).size == (512, 512)
    truth = json.loads((SAMPLES / "invoice.json").read_text())
    assert validation_errors(truth, load_schema("invoice")) == []


def test_any_model_prints_schema_valid_json(random_llm):
    out, err = io.StringIO(), io.StringIO()
    assert main(["extract", str(INVOICE), "--schema", "invoice", "--max-tokens", "600"], llm=random_llm,
                stdout=out, stderr=err) == 0, err.getvalue()
    assert validation_errors(json.loads(out.getvalue()), load_schema("invoice")) == []


def test_readme_command_prints_the_ground_truth(trained_llm):
    # the command exactly as the README gives it, in a fresh process with the default (bundled) model
    proc = subprocess.run([sys.executable, "-m", "nanovl", "extract", "nanovl/assets/samples/invoice.png",
                           "--schema", "invoice"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    value = json.loads(proc.stdout)
    assert validation_errors(value, load_schema("invoice")) == []
    assert value == json.loads((SAMPLES / "invoice.json").read_text())


def test_markdown_of_the_sample_is_every_printed_string(trained_llm):
    # `nanovl extract --markdown`: the page's printed strings in the trained layout (vendor heading,
    # item lines, bold total), the sample being seed 1.5e9 of the generator (samples/README.md)
    import numpy as np

    from nanovl.train.data.documents import make_document_sample
    from nanovl.train.samples import RENDER_SCALE

    want = make_document_sample(1_500_000_000, scale=RENDER_SCALE, augment=False, question="markdown")
    assert np.array_equal(np.asarray(Image.open(INVOICE).convert("RGB")), np.asarray(want.images[0]))
    out, err = io.StringIO(), io.StringIO()
    assert main(["extract", str(INVOICE), "--markdown"], llm=trained_llm, stdout=out, stderr=err) == 0, err.getvalue()
    assert out.getvalue().strip() == want.target
