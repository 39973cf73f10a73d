"""User text is shown as text on every page, and every CSV download is formula-free
(issue 12 items 16 and 17).

The seeded dataset's name, captions, categories and a run error carry Markdown that would
fetch an image, link, colour, break out of a code span, raw HTML and terminal escapes.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hostile_text import live_markdown, unsafe_csv_cells
from streamlit.testing.v1 import AppTest
from test_pages import APP, PAGES

MARKERS = ("beacon", "boom", "link", "b2.png", "img src", "pwned", "HYPERLINK", "evil")
# Pages whose Markdown must show the hostile text (so the check is not vacuous).
SHOWS_USER_TEXT = {"datasets", "results", "captions", "runs"}


def _markdown_elements(at: AppTest) -> list[str]:
    parts = [*at.markdown, *at.caption, *at.info, *at.warning, *at.error, *at.success]
    parts += list(at.get("toast"))
    return [str(getattr(p, "value", "")) for p in parts]


def _open(name: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.switch_page(PAGES[name])
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


@pytest.mark.parametrize("name", list(PAGES))
def test_user_text_is_plain_text_on_every_page(
    hostile_env: Path, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mirada.dashboard import data

    written: list[str] = []
    real_csv = data.csv_bytes

    def capture(df):  # type: ignore[no-untyped-def]
        out = real_csv(df)
        written.append(out.decode("utf-8"))
        return out

    monkeypatch.setattr(data, "csv_bytes", capture)
    at = _open(name)
    if name == "runs":  # the failed run's error message
        failed = [o for o in at.selectbox(key="runs_action_run").options if "failed" in o]
        at.selectbox(key="runs_action_run").select_index(
            at.selectbox(key="runs_action_run").options.index(failed[0])
        ).run()
        assert not at.exception
    shown = [v for v in _markdown_elements(at) if any(m in v for m in MARKERS)]
    if name in SHOWS_USER_TEXT:
        assert shown, f"{name}: no Markdown element shows the hostile text"
    for value in shown:
        assert not live_markdown(value), (name, value, live_markdown(value))
    for text in written:  # every "Download CSV" button of the page
        assert not unsafe_csv_cells(text), (name, unsafe_csv_cells(text))
    if name != "hardware":
        assert written, f"{name}: no CSV download was built"
