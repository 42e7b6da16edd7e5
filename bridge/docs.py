"""``python -m bridge.docs [--check] [DOCS]``: write the generated documentation: the API
reference (from the catalogue), the settings reference and the sample cfg (from the setting
declarations). ``--check`` writes nothing and fails when a file is stale (the tests do)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bridge.catalogue.model import Api
from bridge.catalogue.reference import api_markdown
from bridge.config import reference as settings_reference
from bridge.config.settings import Settings
from bridge.http.app import API_PATH
from bridge.http.page import base_url, example

DOCS = Path(__file__).resolve().parents[1] / "docs"


def _example(api: Api) -> str:
    settings = Settings()
    return example(api, settings, base_url(settings) + API_PATH).curl


def generated(docs: Path) -> dict[Path, str]:
    """Every generated file under ``docs`` with its content."""
    return {
        docs / "reference" / "api.md": api_markdown(_example),
        **settings_reference.outputs(docs),
    }


def stale(docs: Path) -> list[Path]:
    """The generated files that differ from what would be generated now."""
    return [
        path
        for path, text in generated(docs).items()
        if not path.is_file() or path.read_text(encoding="utf-8") != text
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bridge.docs", description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if a file is stale")
    parser.add_argument("docs", nargs="?", type=Path, default=DOCS)
    args = parser.parse_args(argv)
    if args.check:
        old = stale(args.docs)
        for path in old:
            print(f"stale: {path} (run: python -m bridge.docs)", file=sys.stderr)
        return 1 if old else 0
    for path, text in generated(args.docs).items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
