from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from llmdctl.cli import main  # noqa: E402
from llmdctl.compose import compose  # noqa: E402
from llmdctl.rules import evaluate  # noqa: E402
from llmdctl.spec import build_spec  # noqa: E402
from llmdctl.yamlio import load_text  # noqa: E402


class Result:
    def __init__(self, code: int, out: str, err: str):
        self.code, self.out, self.err = code, out, err

    def __repr__(self) -> str:
        return f"Result(code={self.code}, err={self.err[-400:]!r})"


@pytest.fixture
def cli(capsys, monkeypatch):
    """Run llmdctl in-process: cli(args..., env={...}) -> Result(code, stdout, stderr)."""

    def run(*args: str, env: dict | None = None) -> Result:
        for var in ("NAMESPACE", "RELEASE_NAME_POSTFIX"):
            monkeypatch.delenv(var, raising=False)
        for k, v in (env or {}).items():
            monkeypatch.setenv(k, v)
        capsys.readouterr()
        code = main(list(args))
        out, err = capsys.readouterr()
        assert "Traceback" not in err, err
        return Result(code, out, err)

    return run


def plan_for(**kwargs):
    """Compose and evaluate a plan without the environment's NAMESPACE/postfix leaking in."""
    plan = compose(build_spec(env={}, **kwargs))
    evaluate(plan)
    return plan


def parse(text: str):
    return load_text(text, "test").data
