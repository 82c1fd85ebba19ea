"""The log: ``[log] level`` filters what twistd writes; rooms say when they come and go, at info."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from twisted.logger import LogLevel, formatEvent, globalLogPublisher

from services.muc.testing import CRONE, MUC_X, ROOM, WICCA, configure, enter, instant_room, muc_harness
from tests.unit.twistd_process import run_twistd

OWNER = "http://jabber.org/protocol/muc#owner"


def failing_config(tmp_path, level: str | None) -> Any:
    # A database in a missing directory: twistd logs its startup, then one critical sentence, and exits.
    path = tmp_path / "netherfield.toml"
    log = f'[log]\nlevel = "{level}"\n' if level else ""
    path.write_text(
        f'{log}[storage]\nurl = "sqlite:///missing/n.db"\n'
        '[components."c.localhost"]\nsecret = "s"\nservices = ["muc"]\n'
    )
    return path


def test_the_default_level_logs_info_and_up(tmp_path):
    done = run_twistd(failing_config(tmp_path, None))
    assert done.returncode == 1
    assert "#info] twistd " in done.stdout
    assert "[component.app#critical] cannot open the SQLite database" in done.stdout


def test_level_error_leaves_out_info_and_warnings(tmp_path):
    done = run_twistd(failing_config(tmp_path, "error"))
    assert done.returncode == 1
    assert "#info]" not in done.stdout and "#warn]" not in done.stdout, done.stdout
    assert "[component.app#critical] cannot open the SQLite database" in done.stdout


@pytest.fixture
def room_lines() -> Iterator[list[tuple[LogLevel, str]]]:
    """(level, text) of what the MUC logs."""
    lines: list[tuple[LogLevel, str]] = []

    def observe(event: dict[str, Any]) -> None:
        if event.get("log_namespace", "").startswith("services.muc"):
            lines.append((event["log_level"], formatEvent(event)))

    globalLogPublisher.addObserver(observe)
    yield lines
    globalLogPublisher.removeObserver(observe)


def info(lines):
    return [text for level, text in lines if level == LogLevel.info]


def test_a_room_says_when_it_is_created_configured_and_destroyed(room_lines):
    h = muc_harness()
    enter(h, ROOM, "firstwitch", CRONE)
    configure(h, "<field var='muc#roomconfig_membersonly'><value>1</value></field>"
                 "<field var='muc#roomconfig_passwordprotectedroom'><value>1</value></field>"
                 "<field var='muc#roomconfig_roomsecret'><value>cauldronburn</value></field>")
    h.receive(f"<message from='{CRONE}' to='{ROOM}' type='groupchat' id='b'><body>Double, double toil</body></message>")
    h.receive(f"<iq from='{CRONE}' id='d' to='{ROOM}' type='set'><query xmlns='{OWNER}'><destroy>"
              "<reason>Macbeth doth come</reason></destroy></query></iq>")
    assert info(room_lines) == [
        f"{ROOM}: created by crone1@shakespeare.lit",
        f"{ROOM}: configured (temporary, public, members-only, password-protected)",
        f"{ROOM}: destroyed",
    ]
    # Neither the password, nor what was said, nor the reason.
    every = "\n".join(text for _, text in room_lines)
    assert "cauldronburn" not in every and "toil" not in every and "Macbeth" not in every


def test_a_temporary_room_says_it_went_with_its_last_occupant(room_lines):
    h = muc_harness()
    instant_room(h, ROOM, CRONE, "firstwitch")
    h.receive(f"<presence from='{CRONE}' to='{ROOM}/firstwitch' type='unavailable'/>")
    assert info(room_lines)[-1] == f"{ROOM}: gone with its last occupant (a temporary room)"


def test_a_persistent_room_says_it_was_unloaded_when_idle(room_lines):
    h = muc_harness({"idle_unload_seconds": 60})
    instant_room(h, ROOM, CRONE, "firstwitch")
    configure(h, "<field var='muc#roomconfig_persistentroom'><value>1</value></field>")
    h.receive(f"<presence from='{CRONE}' to='{ROOM}/firstwitch' type='unavailable'/>")
    h.clock.advance(60)
    assert info(room_lines)[-2:] == [
        f"{ROOM}: configured (persistent, public, open)",
        f"{ROOM}: unloaded from memory, empty for 60 s",
    ]
    enter(h, ROOM, "secondwitch", WICCA, x=MUC_X)  # loaded again from storage, silently
    assert info(room_lines)[-1] == f"{ROOM}: unloaded from memory, empty for 60 s"
