"""Debian packages some tests need: `make test` installs them (Makefile: prometheus, chromium),
as it installs mariadb-server. Where one still is not there, its tests skip, saying loudly which
package is missing and how to get it — never silently."""

from __future__ import annotations

import shutil

import pytest


def binary(name: str, package: str) -> str:
    """The path of `name`, or skip the test naming the Debian package that provides it."""
    found = shutil.which(name)
    if found is None:
        pytest.skip(f"SKIPPED LOUDLY: `{name}` is not installed — run `make test` (installs "
                    f"it) or `apt-get install {package}`")
    return found
