"""Reproducible installs: the lock files pin (with hashes) everything pyproject.toml asks for,
agree with each other, and are what `make` and the Dockerfile install from."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
PIN = re.compile(r"^([A-Za-z0-9._-]+)==([^\s;\\]+)(?:\s*;\s*([^\\]+?))?\s*\\?$")


def pins(path: Path) -> dict[str, str]:
    """{package: version} of a `uv pip compile --generate-hashes` file; each pin has a hash."""
    found: dict[str, str] = {}
    lines = path.read_text().splitlines()
    for i, line in enumerate(lines):
        if match := PIN.match(line):
            name = canonicalize_name(match[1])
            assert lines[i + 1].strip().startswith("--hash=sha256:"), f"{path.name}: {name}"
            found[name] = match[2]
    return found


def requirements() -> tuple[list[Requirement], list[Requirement]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = [Requirement(r) for r in project["dependencies"]]
    extras = [Requirement(r) for group in project["optional-dependencies"].values()
              for r in group]
    return runtime, extras


def test_every_requirement_is_pinned_within_its_range() -> None:
    runtime, extras = requirements()
    dev, run = pins(ROOT / "requirements-dev.lock"), pins(ROOT / "requirements.lock")
    stale = "pyproject.toml changed since the lock files: run `make lock` and commit them"
    for req in runtime + extras:
        name = canonicalize_name(req.name)
        assert name in dev, f"{req} is not in requirements-dev.lock; {stale}"
        assert req.specifier.contains(dev[name], prereleases=True), (
            f"{req}: requirements-dev.lock pins {dev[name]}; {stale}")
    for req in runtime:
        name = canonicalize_name(req.name)
        assert run.get(name) == dev[name], f"{req}: requirements.lock disagrees; {stale}"
    # The worker's lock holds nothing the dev lock does not pin the same way.
    assert {n: v for n, v in run.items() if dev.get(n) != v} == {}
    assert "pytest" not in run and "mypy" not in run


def test_make_and_the_dockerfile_install_from_the_locks() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert "--require-hashes --no-deps -r $(DEVLOCK)" in makefile
    assert re.search(r"^DEVLOCK\s*:= requirements-dev\.lock$", makefile, re.M)
    assert re.search(r"^STAMP .*\$\(DEVLOCK\)", makefile, re.M)  # a new lock reinstalls
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "COPY requirements.lock" in dockerfile
    assert "pip install --require-hashes --no-deps -r /tmp/requirements.lock" in dockerfile
    stages = re.findall(r"^FROM .*$", dockerfile, re.M)
    assert len(stages) == 2 and stages[0].endswith(" AS build")
    assert re.search(r"^USER secretmagic$", dockerfile, re.M)
    # What the image copies is the whole importable package set of pyproject.toml.
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    for name in [p.rstrip("*") for p in packages["packages"]["find"]["include"]]:
        assert f"COPY {name} ./{name}" in dockerfile, name
    for module in packages.get("py-modules", []):
        assert f"{module}.py" in dockerfile, module
