"""The host seam (component.host): what entities and services use of the component, and nothing else."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import component
import services
from component.component import Component
from component.host import Host
from services.muc.host import RoomHost

PACKAGE = Path(component.__file__).parent
SERVICES = Path(services.__file__).parent
# Every module of the services but the MUC's test harness, which sets up a whole component domain.
SERVICE_MODULES = sorted(str(path.relative_to(SERVICES)) for path in SERVICES.rglob("*.py") if path.name != "testing.py")


def test_the_component_is_a_host() -> None:
    assert isinstance(Component("muc.example.org"), Host)


def test_the_component_hosts_rooms() -> None:
    assert isinstance(Component("muc.example.org"), RoomHost)


@pytest.mark.parametrize("module", ["entity.py", "service.py", "presence.py", "roster.py", "subscription.py", "directed.py", "host.py"])
def test_entities_and_services_are_written_against_the_host_not_the_component(module: str) -> None:
    tree = ast.parse((PACKAGE / module).read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    names = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
    assert "component.component" not in imported
    assert "Component" not in names


@pytest.mark.parametrize("module", SERVICE_MODULES)
def test_services_are_written_against_the_host_not_the_component(module: str) -> None:
    tree = ast.parse((SERVICES / module).read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    names = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
    assert "component.component" not in imported
    assert "Component" not in names
