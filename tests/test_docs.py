"""README.md, docs/ and benchmarks/README.md stay true to the repository.

README.md is a newcomer's page (at most 250 lines); the reference lives in docs/. These checks
keep the pages from going stale: every relative link and anchor resolves, every page in docs/ is
reachable from the README, and the commands, stage names, params keys and test ids the pages
name exist in the Makefile, the `cnnpipe` CLI, dvc.yaml, params.yaml and tests/.
"""

import re
from pathlib import Path

import pytest
import yaml

from cnnpipe.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = [README, ROOT / "benchmarks" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
GUIDES = [README, *sorted((ROOT / "docs").glob("*.md"))]  # pages whose commands are instructions

LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.S | re.M)
INLINE = re.compile(r"`([^`\n]+)`")


def _rel(page: Path) -> str:
    return str(page.relative_to(ROOT))


def _code(text: str) -> list[str]:
    """Fenced blocks and inline code spans: where a page writes commands and keys."""
    blocks = FENCE.findall(text)
    return blocks + INLINE.findall(FENCE.sub("", text))


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]", lambda m: "_" if m.group() == "_" else "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    text = FENCE.sub("", page.read_text())
    return {_slug(h) for h in re.findall(r"^#{1,6} (.+)$", text, re.M)}


def _params() -> dict:
    return yaml.safe_load((ROOT / "params.yaml").read_text())


def _stages() -> tuple[set[str], dict[str, set[str]]]:
    """dvc.yaml's plain stage names, and each foreach stage's items."""
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    plain, foreach = set(), {}
    for name, stage in stages.items():
        items = stage.get("foreach")
        if items is None:
            plain.add(name)
        elif items == "${models}":
            foreach[name] = set(_params()["models"])
        else:
            foreach[name] = set(items)
    return plain, foreach


def test_readme_is_a_newcomers_page():
    lines = README.read_text().splitlines()
    assert len(lines) <= 250, f"README.md has {len(lines)} lines; move reference material into docs/"


@pytest.mark.parametrize("page", PAGES, ids=_rel)
def test_relative_links_and_anchors_resolve(page):
    broken = []
    for target in LINK.findall(FENCE.sub("", page.read_text())):
        if re.match(r"[a-z]+:", target):
            continue  # https:, mailto:
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            broken.append(f"{target} (no such file)")
        elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
            broken.append(f"{target} (no heading #{anchor} in {_rel(dest)})")
    assert not broken, f"{_rel(page)}: {broken}"


def test_every_docs_page_is_linked_from_the_readme():
    linked = {(ROOT / t.partition("#")[0]).resolve() for t in LINK.findall(README.read_text())}
    pages = {p.resolve() for p in PAGES if p != README}
    assert not pages - linked, sorted(_rel(p) for p in pages - linked)


@pytest.mark.parametrize("page", GUIDES, ids=_rel)
def test_make_targets_and_scripts_exist(page):
    makefile = (ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^([a-z][\w-]*):", makefile, re.M))
    code = "\n".join(_code(page.read_text()))
    missing = [f"make {t}" for t in re.findall(r"(?<![\w-])make ([a-z][\w-]*)", code) if t not in targets]
    scripts = re.findall(r"\b((?:stages|benchmarks|scripts)/[\w/]+\.py)", code)
    missing += [s for s in scripts if not (ROOT / s).exists()]
    assert not missing, f"{_rel(page)}: {missing}"


@pytest.mark.parametrize("page", GUIDES, ids=_rel)
def test_cnnpipe_commands_and_options_exist(page):
    (sub,) = [a for a in build_parser()._actions if a.dest == "command"]
    wrong = []
    for code in _code(page.read_text()):
        for line in code.splitlines():
            for m in re.finditer(r"(?:^|[\s$(])cnnpipe ([a-z][\w-]*)([^#|&`]*)", line):
                name, rest = m.groups()
                if name not in sub.choices:
                    wrong.append(f"cnnpipe {name}")
                    continue
                options = sub.choices[name]._option_string_actions
                given = re.findall(r"(?<!\S)(--[a-z][\w-]*)", rest)
                wrong += [f"cnnpipe {name} {o}" for o in given if o not in options]
    assert not wrong, f"{_rel(page)}: {wrong}"


@pytest.mark.parametrize("page", PAGES, ids=_rel)
def test_stage_names_exist_in_dvc_yaml(page):
    plain, foreach = _stages()
    text = page.read_text()
    named = re.findall(r"\b([a-z_]+)@([a-z0-9_]+)\b", text)
    wrong = [f"{s}@{i}" for s, i in named if s in foreach and i not in foreach[s]]
    wrong += [s for s in re.findall(r"`([a-z_]+)@", text) if s not in foreach]
    commands = "\n".join(line.split(" #")[0] for code in _code(text) for line in code.splitlines())
    for m in re.finditer(r"dvc (?:repro|checkout)((?:[ \t]+-[\w-]+)*)[ \t]+([a-z_][\w@]*)", commands):
        name = m.group(2)
        base = name.partition("@")[0]
        if base not in foreach and ("@" in name or base not in plain):
            wrong.append(name)
    assert not wrong, f"{_rel(page)}: {wrong}"


KEY = re.compile(r"(?<![\w./$-])(data|datasets|subsets|run|evaluate|models)((?:\.[\w<>{},*]+)+)")


@pytest.mark.parametrize("page", PAGES, ids=_rel)
def test_params_keys_exist_in_params_yaml(page):
    params, wrong = _params(), []
    for code in _code(page.read_text()):
        for m in KEY.finditer(code):
            node, path = params, [m.group(1), *m.group(2).strip(".").split(".")]
            for part in path:
                if not part or re.search(r"[<>{}*,]", part):
                    break  # a placeholder: models.<name>, datasets.{rps,sea}
                if part in ("py", "json", "yaml", "md"):
                    break  # a file name, not a key
                if not isinstance(node, dict) or part not in node:
                    wrong.append(m.group(0))
                    break
                node = node[part]
    assert not wrong, f"{_rel(page)}: {sorted(set(wrong))}"


@pytest.mark.parametrize("page", PAGES, ids=_rel)
def test_named_tests_exist(page):
    """A page that names a test (`tests/x.py::test_y`, then `::test_z` of the same file) is right."""
    wrong = []
    for cell in re.split(r"\n|\|", page.read_text()):
        current = None
        for path, name in re.findall(r"`(tests/[\w/]+\.py)?::(\w+)`", cell):
            current = path or current
            source = ROOT / current if current else None
            defined = source is not None and source.exists() and f"\ndef {name}(" in source.read_text()
            if not defined:
                wrong.append(f"{current}::{name}")
    assert not wrong, f"{_rel(page)}: {wrong}"
