"""The documentation stands alone (issue 23): the README is short, no page refers to a file outside the repository,
every relative link resolves, and the plugin example of docs/SEARCH.md is right for negative scales."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from htmc.registry import load_plugin

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")          # [text](target)
README_MAX_LINES = 150


def _links(page: Path) -> list[str]:
    return LINK.findall(page.read_text())


def test_the_pages_exist():
    names = {p.relative_to(REPO).as_posix() for p in PAGES}
    assert {"README.md", "docs/DEFINITIONS.md", "docs/DATA.md", "docs/SEARCH.md", "docs/CLUSTER.md"} <= names


def test_readme_is_short():
    n = len((REPO / "README.md").read_text().splitlines())
    assert n < README_MAX_LINES, f"README.md has {n} lines; move detail into docs/"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(REPO).as_posix())
def test_no_page_refers_outside_the_repository(page):
    text = page.read_text()
    for bad in ("../shared", "DESIGN §", "DESIGN.md", "STACK-NOTES"):
        assert bad not in text, f"{page.name} mentions {bad!r}, a file users of the repository do not have"
    for target in _links(page):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue
        path = (page.parent / target.split("#")[0]).resolve()
        assert path.is_relative_to(REPO), f"{page.name} links {target}, outside the repository"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(REPO).as_posix())
def test_every_relative_link_resolves(page):
    missing = [t for t in _links(page)
               if not re.match(r"[a-z]+:", t) and not t.startswith("#")
               and not (page.parent / t.split("#")[0]).exists()]
    assert not missing, f"{page.name}: links to nothing: {missing}"


def test_readme_headline_block_is_marked_for_the_refresh():
    text = (REPO / "README.md").read_text()
    start, end = text.find("<!-- headline:start -->"), text.find("<!-- headline:end -->")
    assert 0 <= start < end, "the headline numbers sit between the headline:start/end markers"


def test_the_plugin_example_encloses_f_for_either_sign_of_scale(tmp_path):
    """The example of docs/SEARCH.md, run as a plugin: its ranges enclose f on every cell with lo <= hi, for a
    decreasing (scale < 0) as well as an increasing cube. The version that took the cell ends as (lo, hi) gave
    lo > hi for scale < 0, and the ladder stopped with 'every cell needs lo <= hi'."""
    text = (REPO / "docs" / "SEARCH.md").read_text()
    code = next(b for b in re.findall(r"```python\n(.*?)```", text, re.S) if "register_function(\"cube\"" in b)
    plugin = tmp_path / "doc_cube.py"
    plugin.write_text(code.replace('"cube"', '"cube_doc_example"'))     # the CLI tests register "cube" too
    load_plugin(plugin)
    from htmc.targets import make_function
    k = 6
    x = np.linspace(0.0, 1.0, 64 * 2 ** k + 1)[:, None]
    cell = np.minimum((x[:, 0] * 2 ** k).astype(int), 2 ** k - 1)
    for scale in (0.5, -0.5):
        f = make_function("cube_doc_example", scale=scale)
        lo, hi = f.ranges(k)
        assert np.all(lo <= hi)
        y = scale * x[:, 0] ** 3
        assert np.all(lo[cell] <= y) and np.all(y <= hi[cell])
        # tight: the range is the cell's image, widened only by float rounding
        assert np.max(hi - lo) == pytest.approx(abs(scale) * (1 - (1 - 2 ** -k) ** 3), rel=1e-9)
        f.table(k)                                   # builds the interval table (it rejects lo > hi)
