"""Check that the venv satisfies pyproject.toml: every runtime and dev requirement installed, in range.

`make setup` installs requirements.lock with `pip install --no-deps`, so a dependency added to
pyproject.toml without `make lock` would go missing silently; this says so instead (exit 1).
`pip check` covers the transitive requirements but not the `dev` extra.
"""

from __future__ import annotations

import sys
from importlib.metadata import PackageNotFoundError, distribution, version

from packaging.requirements import Requirement


def problems(project: str = "supet-ledger", extra: str = "dev") -> list[str]:
    """Requirements of `project` (base and `extra`) the environment does not satisfy."""
    found: list[str] = []
    for spec in distribution(project).requires or []:
        req = Requirement(spec)
        wanted = f"{req.name}{req.specifier}"
        if req.marker is not None and not req.marker.evaluate({"extra": extra}):
            continue
        try:
            installed = version(req.name)
        except PackageNotFoundError:
            found.append(f"{wanted}: not installed")
            continue
        if not req.specifier.contains(installed, prereleases=True):
            found.append(f"{wanted}: {installed} installed")
    return found


def main() -> int:
    found = problems()
    for line in found:
        print(f"check_venv: {line}", file=sys.stderr)
    if found:
        print("check_venv: requirements.lock is behind pyproject.toml: run `make lock`", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
