"""The README's LangGraph snippet runs as written against a live server and is under
ten lines."""

import contextlib
import io
import re
from pathlib import Path

import pytest
from django.core.management import call_command

pytestmark = pytest.mark.django_db(transaction=True)

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_snippet() -> str:
    text = README.read_text()
    section = text[text.index("## LangGraph SDK"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_readme_snippet_creates_a_thread_and_reads_its_state(live_server):
    call_command("seed_demo", "--threads", "0", stdout=io.StringIO())  # the demo login of `make run`
    code = readme_snippet()
    assert len(code.strip().splitlines()) < 10
    code = code.replace("http://127.0.0.1:8000/api", live_server.url + "/api")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(code, {})  # noqa: S102
    assert "'type': 'human'" in out.getvalue() and "'content': 'hello'" in out.getvalue()
