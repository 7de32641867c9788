"""Open an HTML page in headless Chromium with the network off, and count the Vega marks it drew.

For the pages ``dvc plots show`` / ``dvc plots diff`` write::

    from tests.helpers.browser import count_marks, render_offline, require_chromium, revisions_drawn

    require_chromium()  # skips the test when no Chromium binary is installed
    dom = render_offline(out / "index.html", screenshot=tmp_path / "plots.png")
    assert count_marks(dom) > 0
    assert revisions_drawn(dom) == {"HEAD~1", "HEAD"}

Marks are counted in the SVG that Vega's SVG renderer writes (the offline template in
``.dvc/plots/`` makes it the default); a canvas-rendered or blank page has none.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections import Counter
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import pytest

# Names of the binary in Debian's `chromium` package and in other distributions; $CHROMIUM wins.
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")

# Every request goes to a proxy on a closed port of the loopback (loopback included) and no host
# name resolves: nothing outside this machine is reached, whatever the machine's network.
OFFLINE_FLAGS = (
    "--proxy-server=127.0.0.1:9",
    "--proxy-bypass-list=<-loopback>",
    "--host-resolver-rules=MAP * ~NOTFOUND",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-default-apps",
    "--disable-extensions",
    "--disable-sync",
    "--no-first-run",
    "--no-default-browser-check",
)


def find_chromium() -> str | None:
    """Path of a Chromium (or Chrome) binary: ``$CHROMIUM`` if set, else the first on PATH."""
    if os.environ.get("CHROMIUM"):
        return shutil.which(os.environ["CHROMIUM"])
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


def require_chromium() -> str:
    """The Chromium binary; skips the calling test when there is none."""
    binary = find_chromium()
    if binary is None:
        pytest.skip(
            "no Chromium binary (looked for $CHROMIUM, " + ", ".join(CHROMIUM_NAMES) + "); "
            "install it with `apt-get install chromium` (.ci/run does)"
        )
    return binary


def render_offline(
    html_path: str | os.PathLike[str],
    screenshot: str | os.PathLike[str] | None = None,
    *,
    window_size: tuple[int, int] = (1280, 1024),
    virtual_time_ms: int = 10_000,
    timeout_s: float = 90,
) -> str:
    """Load ``html_path`` in headless Chromium with the network disabled; return the DOM it built.

    The page runs for ``virtual_time_ms`` of virtual time (time jumps ahead whenever the page is
    idle, so Vega's asynchronous parse and render finish long before that in real time), then
    the DOM after its scripts ran is returned (``--dump-dom``). With ``screenshot`` a PNG of the
    ``window_size`` (width, height) viewport is written there too, in the same run. Skips the
    test when no Chromium is installed; fails when Chromium does.
    """
    binary = require_chromium()
    url = Path(html_path).resolve().as_uri()
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        cmd = [
            binary,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
            f"--user-data-dir={profile}",
            *OFFLINE_FLAGS,
            f"--virtual-time-budget={virtual_time_ms}",
            f"--window-size={window_size[0]},{window_size[1]}",
            "--dump-dom",
        ]
        if screenshot is not None:
            Path(screenshot).parent.mkdir(parents=True, exist_ok=True)
            cmd.append(f"--screenshot={Path(screenshot).resolve()}")
        cmd.append(url)
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, check=False)
    if result.returncode != 0 or "<html" not in result.stdout.lower():
        raise RuntimeError(
            f"{binary} exited {result.returncode} on {url} without a DOM:\n{result.stderr[-4000:]}"
        )
    if screenshot is not None and not Path(screenshot).is_file():
        raise RuntimeError(f"{binary} wrote no screenshot {screenshot}:\n{result.stderr[-4000:]}")
    return result.stdout


@dataclass(frozen=True)
class Mark:
    """One drawn item of a Vega data mark: a ``path``, ``line``, ``rect``, ``text``... element."""

    kind: str  # the Vega mark type: line, symbol, rect, rule, area, text, ...
    tag: str  # the SVG element
    group: str  # the mark's name in the spec (e.g. layer_0_marks)
    label: str  # its aria-label, e.g. "step: 3; loss: 0.2; rev: HEAD" ("" when none)


# Elements Vega's SVG renderer draws an item with.
_DRAWN_TAGS = {"path", "line", "rect", "circle", "ellipse", "polygon", "polyline", "text", "image"}
_VOID_TAGS = {"meta", "link", "br", "hr", "img", "input", "area", "base", "col", "embed", "source", "wbr"}
_MARK_CLASS = re.compile(r"mark-([\w-]+)")


class _MarkParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        # one entry per open element: (tag, (kind, group) when it is a data-mark container)
        self.stack: list[tuple[str, tuple[str, str] | None]] = []
        self.marks: list[Mark] = []
        self.text: tuple[Mark, list[str]] | None = None  # an open <text> item and its content

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        classes = a.get("class", "").split()
        container = None
        if tag == "g":
            kind = next((m.group(1) for c in classes if (m := _MARK_CLASS.fullmatch(c))), None)
            if kind is not None and "role-mark" in classes:
                group = next((c for c in classes if not c.startswith(("mark-", "role-"))), "")
                container = (kind, group)
        parent = self.stack[-1][1] if self.stack else None
        if parent is not None and parent[0] != "group" and tag in _DRAWN_TAGS and _visible(a):
            mark = Mark(parent[0], tag, parent[1], a.get("aria-label", ""))
            if tag == "text":  # drawn only when it has text (hidden labels are written empty)
                self.text = (mark, [])
            else:
                self.marks.append(mark)
        if tag not in _VOID_TAGS:
            self.stack.append((tag, container))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in _VOID_TAGS:
            self.stack.pop()

    def handle_data(self, data: str) -> None:
        if self.text is not None:
            self.text[1].append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "text" and self.text is not None:
            mark, content = self.text
            if "".join(content).strip():
                self.marks.append(mark)
            self.text = None
        # pop up to the matching open element (tolerates unclosed ones)
        for i in range(len(self.stack) - 1, -1, -1):
            if self.stack[i][0] == tag:
                del self.stack[i:]
                return


def _visible(attrs: dict[str, str]) -> bool:
    """Whether an item is drawn: not hidden, not fully transparent (hover rules, voronoi cells)."""
    if attrs.get("display") == "none" or attrs.get("visibility") == "hidden":
        return False
    if attrs.get("opacity", "1").strip() in {"0", "0.0"}:
        return False
    invisible = {"", "none", "transparent"}
    return not (attrs.get("fill", "").strip() in invisible and attrs.get("stroke", "").strip() in invisible)


def drawn_marks(dom: str) -> list[Mark]:
    """The visible items of Vega's data marks (``<g class="mark-* role-mark">``) in ``dom``.

    Axes, legends and titles are not data marks and are not counted, nor are group backgrounds,
    invisible helpers (a transparent voronoi for hovering, opacity-0 rules) or empty text items
    (the cell values of DVC's confusion template until "showValues" is ticked).
    """
    parser = _MarkParser()
    parser.feed(dom)
    parser.close()
    return parser.marks


def count_marks(dom: str) -> int:
    """How many data-mark items Vega drew as SVG in ``dom`` (0 for a blank or canvas page)."""
    return len(drawn_marks(dom))


def mark_counts(dom: str) -> Counter[str]:
    """Drawn data-mark items per Vega mark type, e.g. ``Counter({"line": 4, "symbol": 2})``."""
    return Counter(mark.kind for mark in drawn_marks(dom))


_REV = re.compile(r"(?:^|;\s*)rev: ([^;]+)")


def revisions_drawn(dom: str) -> set[str]:
    """The DVC revisions (the ``rev`` field of DVC's plot templates) that have a drawn mark.

    Read from the aria-label Vega-Lite gives each item (``"step: 3; loss: 0.2; rev: HEAD"``);
    revisions are named as the ``dvc plots diff`` arguments were (``HEAD~1``, an experiment name),
    ``workspace`` for the working tree. Templates that colour the marks by revision (DVC's default
    ``linear`` and the others with a ``rev`` legend) have it there; the confusion templates put
    revisions in facet headers, so their marks add none.
    """
    revs = set()
    for mark in drawn_marks(dom):
        match = _REV.search(mark.label)
        if match and match.group(1).strip() != "undefined":
            revs.add(match.group(1).strip())
    return revs
