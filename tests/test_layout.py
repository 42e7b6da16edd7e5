"""The tree is the architecture: packages in layers that only import downwards, modules small
enough to read in one sitting, Airflow-side scripts free of the daemon, generated docs fresh."""

from __future__ import annotations

import ast
import os
import re
import sys
from pathlib import Path

import pytest

from bridge import docs

# Under mutation testing the sources are mutmut's rewritten copies: nothing here applies.
pytestmark = pytest.mark.skipif(
    "MUTANT_UNDER_TEST" in os.environ, reason="mutmut rewrote the sources this reads"
)
PACKAGE = Path(__file__).parents[1] / "bridge"
ROOT = PACKAGE.parent
# Lowest first: a module may import its own package and the layers below it, never above.
LAYERS = (
    ("errors", "offload", "waiting"),
    ("text",),
    ("config",),
    ("catalogue",),
    ("process",),
    ("deploy", "jobs", "task_logs"),
    ("calls",),
    ("openapi",),
    ("http",),
    ("service",),
    ("cli", "token_commands", "docs", "__main__", "launch"),
)
DECLARATIVE_TABLES = {"catalogue/table.py"}
MAX_LINES = 350


def modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def layer_of(module: str) -> int:
    """``bridge.http.views`` -> the index of the layer of ``http``."""
    part = module.split(".")[1] if "." in module else ""
    for index, names in enumerate(LAYERS):
        if part in names:
            return index
    raise AssertionError(f"{module} is in no layer")


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts)


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_reaches_up(path: Path) -> None:
    name = module_name(path)
    if name in ("bridge", "bridge.__init__") or ".airflow_side" in name:
        return
    own = layer_of(name)
    for imported in imports_of(path):
        if imported.startswith("bridge.") and imported.split(".")[1] in sum(LAYERS, ()):
            assert layer_of(imported) <= own, f"{name} imports {imported} from a layer above"


@pytest.mark.parametrize(
    "path",
    sorted(
        path
        for folder in ("calls", "deploy", "jobs", "config", "text", "task_logs", "catalogue")
        for path in (PACKAGE / folder).rglob("*.py")
    ),
    ids=lambda p: str(p.relative_to(PACKAGE)),
)
def test_the_use_cases_know_no_http_framework(path: Path) -> None:
    """bridge/calls/ is what a call does, whatever carries it, and deploy/, jobs/, config/,
    text/, task_logs/ and catalogue/ what it uses: no aiohttp, no multidict (an upload arrives
    as chunks, a webhook leaves through a sender the HTTP side hands in, the log filter is
    told which errors quote a request)."""
    for imported in imports_of(path):
        assert imported.split(".")[0] not in ("aiohttp", "multidict", "yarl"), imported


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_modules_stay_readable(path: Path) -> None:
    if str(path.relative_to(PACKAGE)) in DECLARATIVE_TABLES:
        return
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{path.name}: {lines} lines"


@pytest.mark.parametrize("path", sorted((PACKAGE / "airflow_side").glob("*.py")), ids=str)
def test_airflow_side_scripts_use_only_the_standard_library_and_airflow(path: Path) -> None:
    """They run under Airflow's interpreter, where neither the bridge nor aiohttp exists; a
    sibling script is there (run by path, their folder is sys.path[0])."""
    siblings = {sibling.stem for sibling in path.parent.glob("*.py")}
    for imported in imports_of(path):
        top = imported.split(".")[0]
        local = imported.removeprefix("bridge.airflow_side.") in siblings | {"bridge.airflow_side"}
        assert top == "airflow" or top in sys.stdlib_module_names or local, imported


def test_every_subpackage_has_its_init() -> None:
    for folder in PACKAGE.iterdir():
        # templates/ and static/ are links to the top-level folders: the package's data
        if folder.is_dir() and not folder.is_symlink() and folder.name != "__pycache__":
            assert (folder / "__init__.py").is_file(), folder


def test_generated_docs_are_fresh() -> None:
    """docs/reference/ and docs/airflow.cfg.sample are written by `python -m bridge.docs`
    (make docs) from the catalogue and the setting declarations."""
    assert docs.stale(docs.DOCS) == []


def test_every_setting_is_in_the_sample_and_the_reference() -> None:
    from bridge.config.settings import KNOWN_KEYS

    sample = (docs.DOCS / "airflow.cfg.sample").read_text()
    reference = (docs.DOCS / "reference" / "settings.md").read_text()
    for key in KNOWN_KEYS:
        assert re.search(rf"^#? ?{key} =", sample, re.MULTILINE), key
        assert f"`{key}`" in reference, key


@pytest.mark.parametrize(
    "page", [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))], ids=str
)
def test_relative_links_lead_somewhere(page: Path) -> None:
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text(encoding="utf-8")):
        if "://" in target or target.startswith("mailto:"):
            continue
        assert (page.parent / target).exists(), f"{page.name} links to missing {target}"


def test_readme_stays_a_front_door() -> None:
    """README.md is where a new user starts: the two commands, three calls, links on. The
    guides and the generated reference belong in docs/, so it stays under 15 KB."""
    size = len((ROOT / "README.md").read_bytes())
    assert size < 15_000, f"README.md is {size} bytes; move reference material to docs/"
