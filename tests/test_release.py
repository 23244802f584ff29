"""A release has one version (CONTRIBUTING.md, "Making a release"): the newest CHANGELOG
section, pyproject.toml, bnutils.__version__ and CITATION.cff agree."""

from __future__ import annotations

import re
from pathlib import Path

import bnutils

ROOT = Path(__file__).resolve().parents[1]
SECTION = re.compile(r"^## (\d+\.\d+\.\d+)(?: \((unreleased|\d{4}-\d\d-\d\d)\))?$", re.M)


def _pyproject_version() -> str:
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    return re.search(r'^version = "([^"]+)"$', text, re.M).group(1)


def test_the_changelogs_newest_version_is_the_packages():
    versions = SECTION.findall((ROOT / "CHANGELOG.md").read_text(encoding="utf-8"))
    assert versions, "CHANGELOG.md has no '## X.Y.Z' section"
    newest = versions[0][0]
    assert newest == _pyproject_version() == bnutils.__version__
    cff = (ROOT / "CITATION.cff").read_text(encoding="utf-8")
    assert re.search(r'^version: "([^"]+)"$', cff, re.M).group(1) == newest


def test_changelog_versions_go_down():
    versions = [tuple(map(int, v.split("."))) for v, _ in
                SECTION.findall((ROOT / "CHANGELOG.md").read_text(encoding="utf-8"))]
    assert versions == sorted(versions, reverse=True) and len(set(versions)) == len(versions)
