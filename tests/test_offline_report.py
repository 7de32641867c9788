"""`dvc plots diff` writes a page that renders with no network: the offline template in .dvc/plots/.

A small git + DVC repository gets this repository's `plots` config and `.dvc/plots/`, a top-level
plot over a CSV and two commits with different data; headless Chromium with the network off must
draw the marks of both revisions. dvc_render's stock CDN page, opened the same way, draws none.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import sys
from pathlib import Path

import pytest
from configobj import ConfigObj

from tests.helpers.browser import count_marks, mark_counts, render_offline, require_chromium, revisions_drawn
from tests.helpers.worktree import ROOT, clone_env, run

DVC = Path(sys.executable).with_name("dvc")
SCRIPT_SRC = re.compile(r"<script\b[^>]*\bsrc\s*=", re.IGNORECASE)
REMOTE_SRC = re.compile(r"<script\b[^>]*\bsrc\s*=\s*[\"']?\s*(?:https?:)?//", re.IGNORECASE)

DVC_YAML = """\
plots:
  - metrics.csv:
      x: step
      y: loss
"""


def _builder():
    spec = importlib.util.spec_from_file_location(
        "build_plots_template", ROOT / "scripts/build_plots_template.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _csv(losses: list[float]) -> str:
    return "step,loss\n" + "".join(f"{step},{loss}\n" for step, loss in enumerate(losses))


def test_committed_template_is_the_generated_one():
    builder = _builder()
    assert builder.TEMPLATE.read_text(encoding="utf-8") == builder.build_template(), (
        "run: python scripts/build_plots_template.py"
    )
    # .dvc/config points at it; DVC joins a relative html_template to the .dvc directory.
    setting = ConfigObj(str(ROOT / ".dvc" / "config"))["plots"]["html_template"]
    assert setting == builder.CONFIG_VALUE
    assert (ROOT / ".dvc" / setting).resolve() == builder.TEMPLATE.resolve()


@pytest.fixture(scope="module")
def plots_repo(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """A git + DVC repository with this one's plots config and two commits of `metrics.csv`."""
    require_chromium()  # skip before spending seconds on DVC
    repo = tmp_path_factory.mktemp("plots_repo")
    env = clone_env(repo)
    run(["git", "init", "-q", "-b", "main"], repo, env)
    run([DVC, "init", "-q"], repo, env)
    shutil.copytree(ROOT / ".dvc" / "plots", repo / ".dvc" / "plots")
    config = ConfigObj(str(repo / ".dvc" / "config"))
    config["plots"] = dict(ConfigObj(str(ROOT / ".dvc" / "config"))["plots"])
    config.write()
    (repo / "dvc.yaml").write_text(DVC_YAML)
    (repo / "metrics.csv").write_text(_csv([1.0, 0.7, 0.5, 0.4]))
    run(["git", "add", "-A"], repo, env)
    run(["git", "commit", "-qm", "first"], repo, env)
    (repo / "metrics.csv").write_text(_csv([0.9, 0.5, 0.3, 0.2, 0.15]))
    run(["git", "commit", "-qam", "second"], repo, env)
    return repo, env


def test_plots_diff_renders_offline(plots_repo, tmp_path):
    repo, env = plots_repo
    run([DVC, "plots", "diff", "HEAD~1", "HEAD", "-o", "out"], repo, env)
    page = repo / "out" / "index.html"
    html = page.read_text(encoding="utf-8")
    assert not REMOTE_SRC.search(html), "the page loads a script from the network"
    assert not SCRIPT_SRC.search(html), "the page loads a script file: it is not self-contained"
    assert "vegaEmbed('#metrics_csv'" in html

    # The page works wherever it is copied to.
    moved = tmp_path / "elsewhere" / "plots.html"
    moved.parent.mkdir()
    shutil.copy(page, moved)
    shot = tmp_path / "plots.png"
    dom = render_offline(moved, screenshot=shot, window_size=(800, 500))
    assert shot.read_bytes().startswith(b"\x89PNG")
    assert count_marks(dom) > 0, "no Vega mark was drawn offline"
    assert mark_counts(dom)["line"] >= 2, mark_counts(dom)  # a line per revision
    assert revisions_drawn(dom) == {"HEAD~1", "HEAD"}


def test_stock_cdn_page_draws_nothing_offline(plots_repo):
    """The control: DVC's stock page (scripts from the CDN) is blank offline, so the test can fail."""
    from dvc_render.html import PAGE_HTML

    repo, env = plots_repo
    # dvc_render's default page with the same SVG default: only where the scripts come from differs.
    stock = repo / "stock_template.html"
    stock.write_text(
        PAGE_HTML.replace("{scripts}", "{scripts}\n<script>\n" + _builder().SVG_DEFAULT + "\n</script>")
    )
    run([DVC, "plots", "diff", "HEAD~1", "HEAD", "-o", "stock", "--html-template", stock], repo, env)
    html = (repo / "stock" / "index.html").read_text(encoding="utf-8")
    assert REMOTE_SRC.search(html), "expected the stock page to load Vega from the CDN"
    assert "vegaEmbed('#metrics_csv'" in html

    dom = render_offline(repo / "stock" / "index.html")
    assert count_marks(dom) == 0
