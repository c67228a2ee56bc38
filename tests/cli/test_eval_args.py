"""`nanovl eval` arguments: one-line usage errors, and a --json that cannot be written refused before the eval.

run: pytest tests/cli/test_eval_args.py
"""
from __future__ import annotations

import pytest

from nanovl.train import eval_cli, evaluate


@pytest.fixture
def no_eval(monkeypatch):
    """Fails the test if the checkpoint is loaded or the eval starts."""
    def refuse(*args, **kwargs):
        raise AssertionError("the eval ran before its arguments were checked")

    monkeypatch.setattr("nanovl.llm.LLM", refuse)
    monkeypatch.setattr(evaluate, "evaluate", refuse)


@pytest.mark.parametrize("argv,needle", [
    (["--json", "/nonexistent/r.json"], "folder /nonexistent does not exist"),
    (["--json", "{tmp}"], "is a folder"),
    (["--n", "many"], "argument --n"),
    (["--thinking", "maybe"], "argument --thinking"),
])
def test_eval_usage_errors_are_one_line_before_the_eval(no_eval, capsys, tmp_path, argv, needle):
    with pytest.raises(SystemExit) as exit_:
        eval_cli.main([a.format(tmp=tmp_path) for a in argv])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("nanovl: error: ") and err.count("\n") == 1 and "usage:" not in err, err
    assert needle in err and err.endswith("(see 'nanovl eval --help')\n"), err
