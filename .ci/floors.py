"""Print a pip constraints file pinning every declared dependency to its lower bound (``>=X`` becomes ``==X``).

CI installs the project against it and runs the quick suite, so a floor that no longer works fails CI instead of a
user's install (``make test-floors``).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import tomllib


def floors(pyproject: Path) -> list[str]:
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    specs = list(project["dependencies"])
    for name, extra in project["optional-dependencies"].items():
        if name != "dev":
            specs += [s for s in extra if not s.startswith("expscale")]
    pins = {}
    for spec in specs:
        match = re.match(r"^([A-Za-z0-9_.\-\[\]]+)\s*>=\s*([^,;\s]+)", spec)
        if match:
            pins[re.sub(r"\[.*\]", "", match.group(1)).lower()] = match.group(2)
    return [f"{name}=={version}" for name, version in sorted(pins.items())]


if __name__ == "__main__":
    root = Path(__file__).resolve().parents[1]
    sys.stdout.write("\n".join(floors(root / "pyproject.toml")) + "\n")
