"""The host seam (component.host): what entities and services use of the component, and nothing else."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import component
from component.component import Component
from component.host import Host

PACKAGE = Path(component.__file__).parent


def test_the_component_is_a_host() -> None:
    assert isinstance(Component("muc.example.org"), Host)


@pytest.mark.parametrize("module", ["entity.py", "service.py", "presence.py", "roster.py", "subscription.py", "directed.py", "host.py"])
def test_entities_and_services_are_written_against_the_host_not_the_component(module: str) -> None:
    tree = ast.parse((PACKAGE / module).read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    names = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
    assert "component.component" not in imported
    assert "Component" not in names
