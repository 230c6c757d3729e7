"""Lay the source tree out as the installed package, for import-linter.

The top-level folders are subpackages of one namespace (``[tool.setuptools]
package-dir`` in pyproject.toml: ``models/`` is ``sdk.models``, ...). import-linter
(grimp) finds a package's modules by walking its folder, so it would see only
``sdk/``; this copies the folders into ``build/import-view/sdk/...`` as a wheel
would place them, with a copy of pyproject.toml (the contracts). Usage:
``python .ci/import_view.py && cd build/import-view && lint-imports`` (lint-imports
puts the current folder first on ``sys.path``, so there it finds this copy of ``sdk``).
"""

from __future__ import annotations

import shutil
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VIEW = ROOT / "build" / "import-view"


def main() -> int:
    package_dir = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    shutil.rmtree(VIEW, ignore_errors=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    # the root package first, then the mapped subpackages into it
    for package, folder in sorted(package_dir.items(), key=lambda item: item[0].count(".")):
        target = VIEW.joinpath(*package.split("."))
        shutil.copytree(ROOT / folder, target, ignore=ignore, dirs_exist_ok=True)
    shutil.copy2(ROOT / "pyproject.toml", VIEW / "pyproject.toml")
    print(f"import view of {len(package_dir)} packages in {VIEW.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
