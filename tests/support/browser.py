"""Debian's Chromium driven by Playwright (no browser download), with every console error kept."""
from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium"
# The machine's network is closed: without these Chromium keeps retrying its own connections.
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@dataclass
class Browser:
    context: Any
    errors: list[str] = field(default_factory=list)

    def page(self) -> Any:
        """A new tab whose console errors and uncaught exceptions land in ``errors``."""
        page = self.context.new_page()
        page.on("console", lambda message: self.errors.append(f"{page.url}: {message.text}")
                if message.type == "error" else None)
        page.on("pageerror", lambda error: self.errors.append(f"{page.url}: {error}"))
        return page


@contextmanager
def chromium(profile: Path, *, width: int = 1280, height: int = 900) -> Iterator[Browser]:
    """Headless Chromium with a fresh profile in ``profile``."""
    from playwright.sync_api import sync_playwright

    if shutil.which(CHROMIUM) is None:
        raise AssertionError(f"{CHROMIUM} is missing: apt-get install -y chromium (scripts/test.sh installs it)")
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile), executable_path=CHROMIUM, headless=True, args=FLAGS,
            viewport={"width": width, "height": height})
        try:
            yield Browser(context)
        finally:
            context.close()
