"""The HTML shells of the dashboard's pages; each page's script fills them from the JSON API.

Templates are ``string.Template`` files in ``templates/``: ``base.html`` around one fragment per
page. Every substituted value is HTML-escaped; pages carry no inline script (the server's
Content-Security-Policy forbids it).
"""
from __future__ import annotations

import html
from functools import lru_cache
from pathlib import Path
from string import Template
from typing import Mapping

TEMPLATES = Path(__file__).resolve().parent / "templates"
TITLES = {"overview": "pools and jobs", "pool": "pool $pool_id", "job": "job $job_id",
          "task": "$task_id · $job_id", "sweep": "sweep $job_id"}


@lru_cache(maxsize=None)
def _template(name: str) -> Template:
    return Template((TEMPLATES / f"{name}.html").read_text(encoding="utf-8"))


def render(page: str, params: Mapping[str, str], *, csrf: str, actions: bool) -> str:
    """The page ``page`` for the path parameters ``params`` (pool_id, job_id, task_id)."""
    values = {key: html.escape(params.get(key, ""), quote=True) for key in ("pool_id", "job_id", "task_id")}
    body = _template(page).substitute(values)
    return _template("base").substitute(
        values, page=page, title=Template(TITLES[page]).substitute(values), body=body, csrf=html.escape(csrf),
        actions="on" if actions else "off")
