"""Where each run, image and comparison lives in the dashboard: page files and relative URLs.

Relative URLs ("results?run=2&item=17") resolve against the app's root whatever page they are
clicked on (every page sits one level below it) and under any server.baseUrlPath, so table
links and chart marks stay on this server. No Streamlit here: pages and tests share it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from urllib.parse import quote, urlencode

from mirada.domain import MAX_ID, Task, parse_id
from mirada.tasks import TASKS

# url path (as app.py registers it) and page file of each page a link can target; the page
# showing a finished run of each task is that task's `mirada.tasks.TaskSpec.page`
RESULTS, CAPTIONS, HARDWARE, COMPARE, RUNS = "results", "captions", "hardware", "compare", "runs"
PAGE_FILES: dict[str, str] = {
    RESULTS: "app_pages/results.py",
    CAPTIONS: "app_pages/captions.py",
    HARDWARE: "app_pages/hardware.py",
    COMPARE: "app_pages/compare.py",
    RUNS: "app_pages/runs.py",
}
TASK_LABELS: dict[str, str] = {
    RESULTS: "Open results",
    CAPTIONS: "Open captions",
    HARDWARE: "Open hardware",
}


def page_for_task(task: Task) -> str:
    """The url path of the page that shows runs of `task`."""
    return TASKS[task].page


def href(page: str, **params: int | str | Iterable[int] | None) -> str:
    """'page?k=v&…' with list values comma-joined; parameters that are None are left out.
    Text is percent-encoded ("Hardest images" -> "Hardest%20images": no "+" to misread)."""
    pairs = {
        k: ",".join(str(int(x)) for x in v) if not isinstance(v, int | str) else str(v)
        for k, v in params.items()
        if v is not None
    }
    return f"{page}?{urlencode(pairs, safe=',', quote_via=quote)}" if pairs else page


def run_href(task: Task, run_id: int) -> str:
    """The page showing run `run_id` of `task`, e.g. 'captions?run=5'."""
    return href(page_for_task(task), run=int(run_id))


def item_href(page: str, run_id: int, item_id: int, *, tab: str | None = None) -> str:
    """The item view of one image of a run on `page` (results or captions), above the tab
    `tab` of that page when given (a page with tabs keeps the open one in `?tab=`)."""
    return href(page, run=int(run_id), item=int(item_id), tab=tab)


def compare_href(run_ids: Iterable[int]) -> str:
    """The Compare page with these runs preselected, the first as the reference."""
    return href(COMPARE, runs=[int(r) for r in run_ids])


def item_href_expr(page: str, run_id: int, field: str = "item_id") -> str:
    """A Vega expression building `item_href(page, run_id, datum[field])` for chart marks."""
    prefix = json.dumps(f"{page}?run={int(run_id)}&item=")
    return f"{prefix} + datum[{json.dumps(field)}]"


_SHOWN_CHARS = 40  # of a bad value, in the notice


class BadUrlParam(ValueError):
    """A URL query parameter that is not what the page reads from it; the message is the one
    line a page shows (plain text: the value is the visitor's, pages escape it)."""


def _shown(value: str) -> str:
    return value if len(value) <= _SHOWN_CHARS else value[:_SHOWN_CHARS] + "…"


def url_id(value: str | None, name: str) -> int | None:
    """The id in URL parameter `name` (`?run=12` -> 12); None when the parameter is absent.

    The one parser for ids in URLs (mirada.domain.parse_id: ASCII digits, 1 to MAX_ID).
    Anything else (empty, "²", "-1", 23 digits) raises BadUrlParam naming the parameter."""
    if value is None:
        return None
    number = parse_id(value)
    if number is None:
        raise BadUrlParam(
            f"Ignored the URL parameter {name}={_shown(value)!r}: "
            f"expected an id, a whole number from 1 to {MAX_ID}."
        )
    return number


def url_ids(value: str | None, name: str) -> list[int]:
    """The ids in URL parameter `name` (`?runs=3,5, 7` -> [3, 5, 7], repeats dropped); [] when
    the parameter is absent. One bad part (`1,²`, `1,,2`, empty) raises BadUrlParam for the
    whole list: a page shows its default rather than half of what a link asked for."""
    if value is None:
        return []
    parts = [parse_id(part) for part in value.split(",")]
    if None in parts:
        raise BadUrlParam(
            f"Ignored the URL parameter {name}={_shown(value)!r}: expected ids separated by "
            f"commas, each a whole number from 1 to {MAX_ID}."
        )
    return list(dict.fromkeys(p for p in parts if p is not None))
