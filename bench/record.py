"""Write one benchmark's section into BENCHMARKS.md (replacing its previous section)."""
from __future__ import annotations

import platform
import re
import time
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent.parent / "BENCHMARKS.md"


def machine() -> str:
    import os

    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def write_section(name: str, command: str, body: str) -> None:
    """Replace the section headed ``## name`` with fresh figures, the command and the date."""
    text = BENCHMARKS.read_text() if BENCHMARKS.exists() else "# Benchmarks\n\nFigures are ratios against a baseline run side by side in the same run.\n"
    section = (f"## {name}\n\nReproduce: `{command}`  \nMeasured {time.strftime('%Y-%m-%d')} on {machine()}.\n\n"
               f"{body.strip()}\n")
    pattern = re.compile(rf"^## {re.escape(name)}\n.*?(?=^## |\Z)", re.S | re.M)
    text = pattern.sub(section + "\n", text) if pattern.search(text) else text.rstrip() + "\n\n" + section
    BENCHMARKS.write_text(text)
