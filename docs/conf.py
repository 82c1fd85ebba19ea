"""Sphinx configuration: the service author's guide and the API reference of ``component``."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import component  # noqa: E402

project = "Netherfield"
author = "the Netherfield authors"
release = version = component.__version__
extensions = ["sphinx.ext.autodoc"]
exclude_patterns = ["_build"]
autodoc_member_order = "bysource"
autodoc_default_options = {"show-inheritance": True}
# Signatures stay as written: the hints name lxml and Twisted types Sphinx cannot link.
autodoc_typehints = "signature"
html_theme = "alabaster"
html_static_path: list[str] = []
