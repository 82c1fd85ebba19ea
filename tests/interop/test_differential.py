"""Our MUC against Prosody 0.12's built-in MUC, scenario by scenario, with real slixmpp clients.

Each scenario runs three times: on Prosody's own MUC (the oracle), on our MUC
behind the same Prosody, and on our MUC behind ejabberd. For each actor, the
normalised stanzas it received (see :func:`tests.interop.harness.normalise`)
must be the same on the oracle and on ours, except for the differences listed
in :data:`ALLOWED`, each with the reason it is right; and ours through
ejabberd must match ours through Prosody except for :data:`EJABBERD`.
Every listed difference must still occur: a fixed one is struck from the list.

Tombstones: Prosody 0.12's mod_muc has them too (``muc_tombstones``, on by
default, ``muc_tombstone_expiry`` 31 days: plugins/muc/mod_muc.lua), and
answers every stanza to a destroyed persistent room's name with ``<gone/>``
holding ``xmpp:ALTERNATE?join``, the reason as its text; ours does the same
(services/muc/tombstones.py), so the scenario lists no difference of its own.
Prosody 0.12 has no roomadmins, roomowners nor getmemberlist field; what
ours does with them follows XEP-0045 and is listed below.
"""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path
from typing import Any

import pytest

from tests.interop.conftest import ORACLE, OURS, Servers
from tests.interop.harness import Actor, Allowed, Rewrite, Scenario, Side, compare, play, used_entries

ROOMCONFIG = "http://jabber.org/protocol/muc#roomconfig"
MUC = "http://jabber.org/protocol/muc"
OWNER = "http://jabber.org/protocol/muc#owner"
ADMIN = "http://jabber.org/protocol/muc#admin"
USER = "http://jabber.org/protocol/muc#user"

SCENARIOS: dict[str, Scenario] = {}


def scenario(fn: Scenario) -> Scenario:
    SCENARIOS[fn.__name__] = fn
    return fn


# -- steps --------------------------------------------------------------------


async def enter(side: Side, actor: Actor, nick: str, inner: str = "", *, x: bool = True) -> None:
    """Send presence to the room as `nick` (with a MUC element holding `inner`) and settle."""
    payload = f"<x xmlns='{MUC}'>{inner}</x>" if x else ""
    actor.send(f"<presence to='{{room}}/{nick}'>{payload}</presence>")
    await side.settle()


async def submit(side: Side, owner: Actor, fields: dict[str, str | list[str]], step: str = "cfg") -> None:
    """Submit the configuration form with these ``muc#roomconfig_*`` fields (all of them if empty: instant)."""
    body = ""
    if fields:
        body = f"<field var='FORM_TYPE'><value>{ROOMCONFIG}</value></field>"
        for name, value in fields.items():
            values = value if isinstance(value, list) else [value]
            body += f"<field var='muc#roomconfig_{name}'>" + "".join(f"<value>{v}</value>" for v in values) + "</field>"
    await owner.iq(
        f"<iq type='set' id='t-{step}' to='{{room}}'><query xmlns='{OWNER}'>"
        f"<x xmlns='jabber:x:data' type='submit'>{body}</x></query></iq>"
    )
    await side.settle()


async def create(side: Side, owner: Actor, nick: str, fields: dict[str, str | list[str]] | None = None) -> None:
    """Create the room and configure it (an instant room without `fields`)."""
    await enter(side, owner, nick)
    await submit(side, owner, fields or {}, "create")


async def say(side: Side, actor: Actor, text: str, step: str, to: str = "{room}", kind: str = "groupchat") -> None:
    actor.send(f"<message type='{kind}' id='t-{step}' to='{to}'><body>{text}</body></message>")
    await side.settle()


async def admin_set(side: Side, actor: Actor, items: str, step: str) -> None:
    await actor.iq(f"<iq type='set' id='t-{step}' to='{{room}}'><query xmlns='{ADMIN}'>{items}</query></iq>")
    await side.settle()


async def admin_get(actor: Actor, attribute: str, value: str, step: str) -> None:
    await actor.iq(
        f"<iq type='get' id='t-{step}' to='{{room}}'><query xmlns='{ADMIN}'><item {attribute}='{value}'/></query></iq>"
    )


async def leave(side: Side, actor: Actor, nick: str) -> None:
    actor.send(f"<presence type='unavailable' to='{{room}}/{nick}'/>")
    await side.settle()


# -- scenarios --------------------------------------------------------------------


@scenario
async def instant_room(side: Side) -> None:
    """§10.1.2: a new room is locked (201) until its owner accepts the default configuration."""
    side.room("instant")
    alice, bob = await side.login("alice"), await side.login("bob")
    await enter(side, alice, "owl")
    await enter(side, bob, "lark")  # locked: refused
    await submit(side, alice, {}, "instant")
    await enter(side, bob, "lark")
    await bob.iq("<iq type='get' id='t-info' to='{room}'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")


@scenario
async def reserved_room(side: Side) -> None:
    """§10.1.3: the owner asks for the form, submits a configuration, then others may enter."""
    side.room("reserved")
    alice, bob = await side.login("alice"), await side.login("bob")
    await enter(side, alice, "owl")
    await alice.iq(f"<iq type='get' id='t-form' to='{{room}}'><query xmlns='{OWNER}'/></iq>")
    await submit(side, alice, {"roomname": "A Reserved Room", "roomdesc": "for testing", "changesubject": "1"})
    await enter(side, bob, "lark")
    await bob.iq("<iq type='get' id='t-info' to='{room}'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
    # An owner's cancel of an already configured room changes nothing.
    await alice.iq(
        f"<iq type='set' id='t-cancel' to='{{room}}'><query xmlns='{OWNER}'>"
        "<x xmlns='jabber:x:data' type='cancel'/></query></iq>"
    )


@scenario
async def history_and_subject(side: Side) -> None:
    """§7.2.15, §7.2.16: history (as asked for) and then the subject, on entering."""
    side.room("history")
    alice, bob, carol = await side.login("alice"), await side.login("bob"), await side.login("carol")
    await create(side, alice, "owl")
    await enter(side, bob, "lark")  # an empty subject
    alice.send("<message type='groupchat' id='t-subject' to='{room}'><subject>Ravens</subject></message>")
    await side.settle()
    for n in range(3):
        await say(side, alice, f"message {n}", f"m{n}")
    await leave(side, bob, "lark")
    await enter(side, bob, "lark", "<history maxstanzas='2'/>")
    await enter(side, carol, "wren")
    # A participant may not change the subject by default.
    carol.send("<message type='groupchat' id='t-subject2' to='{room}'><subject>Crows</subject></message>")
    await side.settle()


@scenario
async def subject_cleared(side: Side) -> None:
    """§8.1: the subject cleared; who enters next gets it empty, from whoever cleared it and dated (Prosody's choice)."""
    side.room("cleared")
    alice, bob = await side.login("alice"), await side.login("bob")
    await create(side, alice, "owl")
    alice.send("<message type='groupchat' id='t-set' to='{room}'><subject>Ravens</subject></message>")
    await side.settle()
    alice.send("<message type='groupchat' id='t-clear' to='{room}'><subject/></message>")
    await side.settle()
    await enter(side, bob, "lark")


@scenario
async def subject_repeated(side: Side) -> None:
    """§8.1: the same subject set again, by the same nick and then by another; who enters next gets it."""
    side.room("again")
    alice, bob, carol = await side.login("alice"), await side.login("bob"), await side.login("carol")
    await create(side, alice, "owl", {"changesubject": "1"})
    await enter(side, bob, "lark")
    alice.send("<message type='groupchat' id='t-set' to='{room}'><subject>Ravens</subject></message>")
    await side.settle()
    alice.send("<message type='groupchat' id='t-again' to='{room}'><subject>Ravens</subject></message>")
    await side.settle()
    bob.send("<message type='groupchat' id='t-other' to='{room}'><subject>Ravens</subject></message>")
    await side.settle()
    await enter(side, carol, "wren")


@scenario
async def nick_change(side: Side) -> None:
    """§7.6: a nick change (303 then the new presence), and a conflict with another's nick."""
    side.room("nicks")
    alice, bob = await side.login("alice"), await side.login("bob")
    await create(side, alice, "owl")
    await enter(side, bob, "lark")
    bob.send("<presence to='{room}/finch'/>")
    await side.settle()
    bob.send("<presence to='{room}/owl' id='t-taken'/>")
    await side.settle()


@scenario
async def presence_update(side: Side) -> None:
    """§7.7: a new show and status go to everyone."""
    side.room("update")
    alice, bob = await side.login("alice"), await side.login("bob")
    await create(side, alice, "owl")
    await enter(side, bob, "lark")
    bob.send("<presence to='{room}/lark'><show>away</show><status>gone fishing</status></presence>")
    await side.settle()
    await leave(side, bob, "lark")


@scenario
async def private_messages(side: Side) -> None:
    """§7.5: a private message between occupants; to no one; from a non-occupant."""
    side.room("private")
    alice, bob, carol = await side.login("alice"), await side.login("bob"), await side.login("carol")
    await create(side, alice, "owl")
    await enter(side, bob, "lark")
    await say(side, bob, "psst", "pm", to="{room}/owl", kind="chat")
    await say(side, bob, "anyone?", "pm-nobody", to="{room}/nobody", kind="chat")
    await say(side, carol, "hello", "pm-outsider", to="{room}/owl", kind="chat")
    await say(side, bob, "to all", "pm-groupchat", to="{room}/owl", kind="groupchat")


@scenario
async def invitations(side: Side) -> None:
    """§7.8.2: a mediated invitation, a decline, and an invitation from a non-occupant."""
    side.room("invites")
    alice, bob, carol = await side.login("alice"), await side.login("bob"), await side.login("carol")
    await create(side, alice, "owl")
    alice.send(
        f"<message id='t-invite' to='{{room}}'><x xmlns='{USER}'><invite to='{{bob}}'>"
        "<reason>come and see</reason></invite></x></message>"
    )
    await side.settle()
    bob.send(
        f"<message id='t-decline' to='{{room}}'><x xmlns='{USER}'><decline to='{{alice}}'>"
        "<reason>too busy</reason></decline></x></message>"
    )
    await side.settle()
    carol.send(f"<message id='t-outsider' to='{{room}}'><x xmlns='{USER}'><invite to='{{bob}}'/></x></message>")
    await side.settle()


@scenario
async def password_room(side: Side) -> None:
    """§7.2.6: a room with a secret refuses a missing or wrong password (not-authorized)."""
    side.room("secret")
    alice, bob = await side.login("alice"), await side.login("bob")
    await create(side, alice, "owl", {"roomsecret": "cauldron", "passwordprotectedroom": "1"})
    await enter(side, bob, "lark")
    await enter(side, bob, "lark", "<password>newt</password>")
    await enter(side, bob, "lark", "<password>cauldron</password>")


@scenario
async def members_only(side: Side) -> None:
    """§9.3, §9.4: a members-only room; affiliations of an absent user change; a member loses membership."""
    side.room("members")
    alice, bob, carol = await side.login("alice"), await side.login("bob"), await side.login("carol")
    await create(side, alice, "owl", {"membersonly": "1"})
    await enter(side, bob, "lark")  # not a member yet
    await admin_set(side, alice, "<item affiliation='member' jid='{carol}'/>", "carol")
    await enter(side, carol, "wren")
    await admin_set(side, alice, "<item affiliation='member' jid='{bob}'><reason>welcome</reason></item>", "bob")
    await enter(side, bob, "lark")
    await admin_set(side, alice, "<item affiliation='admin' jid='{dave}'/>", "dave")
    await admin_set(side, alice, "<item affiliation='none' jid='{bob}'/>", "bob-out")


@scenario
async def registration(side: Side) -> None:
    """§7.10, §7.12: registering with a room, the reserved nick, and another user taking it."""
    side.room("register")
    alice, bob, carol = await side.login("alice"), await side.login("bob"), await side.login("carol")
    await create(side, alice, "owl")
    form = "<iq type='get' id='t-regform{n}' to='{{room}}'><query xmlns='jabber:iq:register'/></iq>"
    submit = (
        "<iq type='set' id='t-register{n}' to='{{room}}'><query xmlns='jabber:iq:register'>"
        "<x xmlns='jabber:x:data' type='submit'>"
        "<field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#register</value></field>"
        "<field var='muc#register_roomnick'><value>lark</value></field></x></query></iq>"
    )
    # Unaffiliated: the owner did not allow it.
    await bob.iq(form.format(n=1))
    await bob.iq(submit.format(n=1))
    await admin_set(side, alice, "<item affiliation='member' jid='{bob}'/>", "member")
    await bob.iq(form.format(n=2))
    await bob.iq(submit.format(n=2))
    await side.settle()
    await bob.iq(
        "<iq type='get' id='t-nick' to='{room}'>"
        "<query xmlns='http://jabber.org/protocol/disco#info' node='x-roomuser-item'/></iq>"
    )
    await enter(side, carol, "lark")
    await admin_get(alice, "affiliation", "member", "members")


@scenario
async def kick_ban_voice(side: Side) -> None:
    """§8.2-§8.6, §9.1: voice in a moderated room, a kick, a ban, a banned user coming back."""
    side.room("moderation")
    alice, bob, carol = await side.login("alice"), await side.login("bob"), await side.login("carol")
    await create(side, alice, "owl", {"moderatedroom": "1"})
    await enter(side, bob, "lark")
    await enter(side, carol, "wren")
    await say(side, bob, "may I?", "visitor")
    await admin_set(side, alice, "<item nick='lark' role='participant'><reason>speak</reason></item>", "voice")
    await say(side, bob, "thanks", "voiced")
    await admin_set(side, alice, "<item nick='lark' role='visitor'/>", "mute")
    await admin_set(side, alice, "<item nick='wren' role='none'><reason>out</reason></item>", "kick")
    await admin_set(side, alice, "<item jid='{bob}' affiliation='outcast'><reason>banned</reason></item>", "ban")
    await enter(side, bob, "lark")
    await admin_set(side, bob, "<item nick='owl' role='none'/>", "kick-owner")


@scenario
async def list_reads(side: Side) -> None:
    """§9.5, §10.5, §10.8: each affiliation asks for each list."""
    side.room("lists")
    alice, bob, carol, dave = [await side.login(n) for n in ("alice", "bob", "carol", "dave")]
    await create(side, alice, "owl")
    # One item per request: Prosody's MUC reads only the first item of a request.
    await admin_set(side, alice, "<item affiliation='admin' jid='{bob}'/>", "setup-admin")
    await admin_set(side, alice, "<item affiliation='member' jid='{carol}'/>", "setup-member")
    await admin_set(side, alice, "<item affiliation='outcast' jid='{erin}'/>", "setup-outcast")
    for actor, nick in ((bob, "lark"), (carol, "wren"), (dave, "crow")):
        await enter(side, actor, nick)
    for actor in (alice, bob, carol, dave):
        for affiliation in ("owner", "admin", "member", "outcast"):
            await admin_get(actor, "affiliation", affiliation, f"{affiliation}")
        for role in ("moderator", "participant"):
            await admin_get(actor, "role", role, f"{role}")


@scenario
async def config_changes(side: Side) -> None:
    """§10.2.1: status codes that configuration changes announce to occupants."""
    side.room("config")
    alice, bob = await side.login("alice"), await side.login("bob")
    await create(side, alice, "owl")
    await enter(side, bob, "lark")
    await submit(side, alice, {"whois": "anyone"}, "public-jids")
    await submit(side, alice, {"enablelogging": "1"}, "logging")
    await submit(side, alice, {"roomname": "Renamed"}, "name")
    await submit(side, alice, {"whois": "moderators", "enablelogging": "0"}, "back")
    await bob.iq(f"<iq type='get' id='t-notowner' to='{{room}}'><query xmlns='{OWNER}'/></iq>")


@scenario
async def destroy(side: Side) -> None:
    """§10.9: the owner destroys the room; occupants learn why and where to go."""
    side.room("doomed")
    alice, bob = await side.login("alice"), await side.login("bob")
    await create(side, alice, "owl")
    await enter(side, bob, "lark")
    await bob.iq(
        f"<iq type='set' id='t-not-owner' to='{{room}}'><query xmlns='{OWNER}'><destroy/></query></iq>"
    )
    await alice.iq(
        f"<iq type='set' id='t-destroy' to='{{room}}'><query xmlns='{OWNER}'>"
        "<destroy jid='{room:elsewhere}'><reason>moving</reason></destroy></query></iq>"
    )
    await side.settle()
    await bob.iq("<iq type='get' id='t-gone' to='{room}'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")


@scenario
async def presence_probe(side: Side) -> None:
    """A probe to an occupant JID is answered with that occupant's presence."""
    side.room("probe")
    alice, bob = await side.login("alice"), await side.login("bob")
    await create(side, alice, "owl")
    await enter(side, bob, "lark")
    bob.send("<presence to='{room}/lark'><show>dnd</show></presence>")
    await side.settle()
    alice.send("<presence type='probe' to='{room}/lark'/>")
    await side.settle()


@scenario
async def bounced_client(side: Side) -> None:
    """An occupant's client bounces a stanza with an error: it is removed (333)."""
    side.room("bounce")
    alice, bob = await side.login("alice"), await side.login("bob")
    await create(side, alice, "owl")
    await enter(side, bob, "lark")
    bob.send(
        "<message type='error' id='t-bounce' to='{room}'><error type='cancel'>"
        "<service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>"
    )
    await side.settle()
    await say(side, alice, "still there?", "after")


@scenario
async def presence_broadcast(side: Side) -> None:
    """§10.2 presencebroadcast, as Prosody's presence_broadcast.lib.lua: visitors unseen, until voiced or listed."""
    side.room("broadcast")
    alice, bob, carol = await side.login("alice"), await side.login("bob"), await side.login("carol")
    await create(side, alice, "owl", {"moderatedroom": "1", "presencebroadcast": ["moderator", "participant"]})
    await enter(side, bob, "lark")  # a visitor: nobody is told
    await enter(side, carol, "wren")  # nor of this one, who does not see the other visitor either
    await leave(side, carol, "wren")
    bob.send("<presence to='{room}/lark'><show>away</show></presence>")
    await side.settle()
    await admin_set(side, alice, "<item nick='lark' role='participant'/>", "voice")  # arrives
    await admin_set(side, alice, "<item nick='lark' role='visitor'/>", "mute")  # leaves
    # (One visitor only: the order in which a change of the setting announces several is Prosody's table order.)
    await submit(side, alice, {"presencebroadcast": ["moderator", "participant", "visitor"]}, "show-visitors")
    await submit(side, alice, {"presencebroadcast": ["moderator"]}, "moderators-only")
    await leave(side, bob, "lark")


@scenario
async def multi_session(side: Side) -> None:
    """One user in the room from two clients under one nick: entering, an update, presencebroadcast changed, one leaving."""
    side.room("twice")
    alice, bob1, bob2 = await side.login("alice"), await side.login("bob"), await side.login("bob")
    await create(side, alice, "owl", {"whois": "anyone"})
    await enter(side, bob1, "lark")
    await enter(side, bob2, "lark")
    bob1.send("<presence to='{room}/lark'><show>away</show></presence>")
    await side.settle()
    await submit(side, alice, {"presencebroadcast": ["moderator"]}, "moderators-only")
    await submit(side, alice, {"presencebroadcast": ["moderator", "participant", "visitor"]}, "everyone")
    await leave(side, bob2, "lark")


@scenario
async def admins_and_owners_form(side: Side) -> None:
    """§10.2 roomadmins and roomowners: the full lists, set through the configuration form."""
    side.room("staff")
    alice, bob = await side.login("alice"), await side.login("bob")
    await create(side, alice, "owl")
    await enter(side, bob, "lark")
    await submit(side, alice, {"roomadmins": ["{bob}"], "roomowners": ["{alice}", "{carol}"]}, "lists")
    await admin_get(alice, "affiliation", "admin", "admins")
    await admin_get(alice, "affiliation", "owner", "owners")
    await submit(side, alice, {"roomadmins": [], "roomowners": ["{alice}"]}, "fewer")
    await admin_get(alice, "affiliation", "admin", "admins-after")


@scenario
async def tombstone(side: Side) -> None:
    """A destroyed persistent room's name answers <gone/> with the alternate venue (Prosody's muc_tombstones)."""
    side.room("buried")
    alice, bob = await side.login("alice"), await side.login("bob")
    await create(side, alice, "owl", {"persistentroom": "1"})
    await alice.iq(
        f"<iq type='set' id='t-destroy' to='{{room}}'><query xmlns='{OWNER}'>"
        "<destroy jid='{room:elsewhere}'><reason>moving</reason></destroy></query></iq>"
    )
    await side.settle()
    bob.send(f"<presence id='t-enter' to='{{room}}/lark'><x xmlns='{MUC}'/></presence>")
    await side.settle()
    await bob.iq("<iq type='get' id='t-info' to='{room}'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
    await say(side, bob, "anyone?", "message")


# -- allowed differences ----------------------------------------------------------

#: XEP-0421 occupant ids are each service's own hashes (with its own secret): compared as present, not by value.
OCCUPANT_IDS = Rewrite(
    "XEP-0421 occupant ids are each service's own hashes: compared as present, not by value",
    r'(<occupant-id xmlns="urn:xmpp:occupant-id:0" id=")[^"]*"/>',
    r'\1*"/>',
    side="both",
)


def _payload_dropped(match: re.Match[str]) -> str:
    head, inner = match.group(1), match.group(2)
    error = re.search(r"<error.*?</error>", inner)
    return head + (error.group(0) if error else "") + match.group(3)


#: Where our MUC differs from Prosody's own, and why that is right (or not yet fixed).
ALLOWED: list[Allowed] = [
    # -- disco and forms ---------------------------------------------------------
    Allowed(
        None,
        "Our room lists every protocol it answers (disco, muc#admin, muc#owner, muc#register, ping,"
        " version, the room's vCard, its stanza-ids, moderated retraction); Prosody's lists fewer (XEP-0030 §3.1: an entity SHOULD list what it supports)",
        actual=(
            r'> <feature var="(http://jabber.org/protocol/(disco#info|disco#items|muc#admin|muc#owner|muc#register)'
            r'|jabber:iq:version|urn:xmpp:ping|vcard-temp|urn:xmpp:sid:0'
            r'|urn:xmpp:message-moderate:[01]|urn:xmpp:message-retract:1)"/>',
        ),
    ),
    Allowed(
        None,
        "A new room is public here and hidden in Prosody (muc_room_default_public = false): a choice"
        " XEP-0045 leaves open; ours keeps rooms findable, as the README says",
        expected=(r'> <feature var="muc_hidden"/>', r'var="muc#roomconfig_publicroom"><value>0</value>'),
        actual=(r'> <feature var="muc_public"/>', r'var="muc#roomconfig_publicroom"><value>1</value>'),
    ),
    Allowed(
        None,
        "An untitled room: our identity is named after the room's node, Prosody's has no name"
        " (XEP-0045 §6.4: the name is the room's natural-language name, optional)",
        expected=(r'> <identity category="conference" type="text"/>',),
        actual=(r'> <identity category="conference" name="[^"]+" type="text"/>',),
    ),
    Allowed(
        None,
        "muc#roominfo: Prosody also carries its own allowmemberinvites and roominfo_lang (its default"
        " language); ours carries the subject and changesubject under XEP-0045 §15.5.4's registered"
        " name as well as Prosody's, and who may send private messages (allowpm), which Prosody 0.12"
        " leaves out",
        expected=(
            r't-info  x > <field [^>]*var="(\{http://prosody.im/protocol/muc\}roomconfig_allowmemberinvites|muc#roominfo_lang)"',
        ),
        actual=(r't-info  x > <field [^>]*var="(muc#roominfo_subject|muc#roominfo_changesubject|muc#roomconfig_allowpm)"',),
    ),
    Allowed(
        None,
        "The configuration form: Prosody has section headings (fixed fields), xdata-validate"
        " hints, defaulthistorymessages, allowmemberinvites and a default"
        " language; ours has passwordprotectedroom, enablelogging, maxusers, allowinvites, allowpm,"
        " enablearchiving (mod_muc_mam's field, which Prosody's MUC alone has not), and XEP-0045 §10.2's"
        " getmemberlist, roomadmins and roomowners, which Prosody 0.12 lacks; and no default language",
        expected=(
            r't-form  x > <field type="fixed">',
            r't-form  x > <field [^>]*var="(muc#roomconfig_defaulthistorymessages'
            r'|\{http://prosody.im/protocol/muc\}roomconfig_allowmemberinvites)"',
            r't-form  x > <field var="muc#roomconfig_(historylength|lang)"><validate',
        ),
        actual=(
            r't-form  x > <field [^>]*var="muc#roomconfig_(passwordprotectedroom|enablelogging|maxusers|allowinvites|allowpm'
            r'|enablearchiving|getmemberlist|roomadmins|roomowners)"',
            r't-form  x > <field var="muc#roomconfig_historylength"><value>',
            r't-form  x > <field var="muc#roomconfig_lang"/>',
        ),
    ),
    # -- configuration -------------------------------------------------------------
    Allowed(
        "config_changes",
        "Ours announces logging being switched on and off (170, 171; §10.2.1), a setting Prosody's"
        " MUC does not have",
        expected=(r'<status code="173"/></x></message>',),
        actual=(r'<status code="17[01]"/>',),
    ),
    Allowed(
        "nick_change",
        "The 303 presence to the occupant who changes its nick: ours carries its occupant id, as"
        " every presence from an occupant (XEP-0421 §4); Prosody's lacks it",
        expected=(r'to="bob@localhost/1" type="unavailable"><x [^>]*><item [^>]*nick="finch"',),
        actual=(r'to="bob@localhost/1" type="unavailable"><occupant-id[^>]*/><x [^>]*><item [^>]*nick="finch"',),
    ),
    # -- entering ---------------------------------------------------------------------
    Allowed(
        "history_and_subject",
        "A subject change is reflected with the sender's id (as any groupchat message, so the"
        " sender recognises it); Prosody's reflection has a new id",
        expected=(r'from="history@MUC/owl" to="(alice|bob)@localhost/1" type="groupchat">(<occupant-id[^>]*/>)?<subject>Ravens',),
        actual=(r'id="t-subject" to="(alice|bob)@localhost/1" type="groupchat">(<occupant-id[^>]*/>)?<subject>Ravens',),
    ),
    Allowed(
        "subject_cleared",
        "A subject change is reflected with the sender's id, setting and clearing alike (as in"
        " history_and_subject); Prosody's reflection has a new id",
        expected=(r'from="cleared@MUC/owl" to="alice@localhost/1" type="groupchat">(<occupant-id[^>]*/>)?<subject(>Ravens|/>)',),
        actual=(r'id="t-(set|clear)" to="alice@localhost/1" type="groupchat">(<occupant-id[^>]*/>)?<subject(>Ravens|/>)',),
    ),
    Allowed(
        "subject_repeated",
        "A subject change is reflected with the sender's id (as in history_and_subject); Prosody's"
        " reflection has a new id",
        expected=(r'from="again@MUC/(owl|lark)" to="(alice|bob)@localhost/1" type="groupchat">(<occupant-id[^>]*/>)?<subject>Ravens',),
        actual=(r'id="t-(set|other)" to="(alice|bob)@localhost/1" type="groupchat">(<occupant-id[^>]*/>)?<subject>Ravens',),
    ),
    Allowed(
        "subject_repeated",
        "The same subject set again by the same nick: ours reflects it to everyone, the sender too"
        " (§8.1: the service MUST reflect a subject change); Prosody 0.12 sends nothing at all, neither"
        " reflection nor error (muc/subject.lib.lua: set_subject returns early). Both keep the time it"
        " was first set for newcomers (§7.2.16: when it was last modified), and the same text from"
        " another nick is a change in both",
        actual=(r'id="t-again" to="(alice|bob)@localhost/1" type="groupchat">(<occupant-id[^>]*/>)?<subject>Ravens',),
    ),
    Allowed(
        "multi_session",
        "An occupant in the room from two clients: Prosody puts one item per client in every presence"
        " of it that shows real JIDs (to itself, and to those who see JIDs: entering, updates, a change of"
        " presencebroadcast), sends each client its own presence as the template of its 110, and on one"
        " client leaving tells that client role participant and everyone else the occupant anew, both"
        " clients still listed; ours has one item, the client whose presence the room shows, that presence"
        " to both clients, role none to the client that leaves and nothing to the others while the shown"
        " presence stays. XEP-0045 leaves multi-session nicks undefined (§3)",
        expected=(
            r'<item affiliation="none" jid="bob@localhost/1" role="participant"/>'
            r'<item affiliation="none" jid="bob@localhost/2" role="participant"/>',
        ),
        actual=(
            r'^<presence xmlns="jabber:client" from="twice@MUC/lark" [^>]*>(<occupant-id[^>]*/>)?(<show>away</show>)?'
            r'<x xmlns="http://jabber.org/protocol/muc#user"><item affiliation="none" jid="bob@localhost/[12]"'
            r' role="(participant|none)"/>(<status code="1[01]0"/>)*</x></presence>$',
        ),
    ),
    # -- affiliations and lists -----------------------------------------------------
    Allowed(
        "registration",
        "A member who registers a nick keeps its affiliation: Prosody announces it to the room as an"
        " affiliation change all the same; ours announces changed affiliations only",
        expected=(r'<message xmlns="jabber:client" from="register@MUC" to="alice@localhost/1"><x xmlns="http://jabber.org/protocol/muc#user"><item affiliation="member"',),
    ),
    Allowed(
        None,
        "The actor of a kick, ban, voice change or lost membership: Prosody names it by nick and"
        " real JID to those who may see JIDs; ours by nick only, as XEP-0045's examples (§8.2, §9.1)",
        expected=(r'<actor jid="alice@localhost/1" nick="owl"/>',),
        actual=(r'<actor nick="owl"/>',),
    ),
    Allowed(
        "kick_ban_voice",
        "Kicking an owner by someone who is no moderator at all (a banned user): forbidden"
        " (§8.2: only moderators kick) rather than Prosody's not-allowed (for a moderator"
        " kicking an owner)",
        expected=(r'id="t-kick-owner"[^>]*type="error"><error type="cancel"><not-allowed',),
        actual=(r'id="t-kick-owner"[^>]*type="error"><error type="auth"><forbidden',),
    ),
    Allowed(
        "admins_and_owners_form",
        "The configuration form's roomadmins and roomowners (XEP-0045 §10.2, the full lists): Prosody 0.12"
        " has neither field and ignores them; ours sets the affiliations and tells them as a muc#admin"
        " change (the admin's presence, a new moderator's view of real JIDs, a message for the absent"
        " owner), and the lists read back hold them",
        actual=(
            r'from="staff@MUC/lark" to="(alice|bob)@localhost/1">(<occupant-id[^>]*/>)?<x [^>]*>'
            r'<item affiliation="(admin" jid="bob@localhost/1" role="moderator|none" jid="bob@localhost/1" role="participant)"/>',
            r'from="staff@MUC/owl" to="bob@localhost/1">(<occupant-id[^>]*/>)?<x [^>]*><item affiliation="owner" jid="alice@localhost/1"',
            r'<message xmlns="jabber:client" from="staff@MUC" to="(alice|bob)@localhost/1"><x [^>]*>'
            r'<item affiliation="(owner|none)" jid="carol@localhost"/></x></message>',
            r't-(admins|owners)  > <item affiliation="(admin|owner)" jid="(bob|carol)@localhost"/>',
        ),
    ),
    # -- registration -----------------------------------------------------------------
    # -- messages -----------------------------------------------------------------
    Allowed(
        "private_messages",
        "A private message from a non-occupant: not-acceptable of type cancel in Prosody, modify in ours"
        " (RFC 6120 §8.3.3.11 gives modify for not-acceptable)",
        expected=(r'id="t-pm-outsider"[^>]*type="error"><error type="cancel"><not-acceptable',),
        actual=(r'id="t-pm-outsider"[^>]*type="error"><error type="modify"><not-acceptable',),
    ),
    Allowed(
        "invitations",
        "A decline: ours names the decliner by bare JID (XEP-0045 §7.8.2's example), Prosody by full JID"
        " (and words its body otherwise)",
        expected=(r'id="t-decline" to="alice@localhost"><body>[^<]*</body><x [^>]*><decline from="bob@localhost/1">',),
        actual=(r'id="t-decline" to="alice@localhost"><body>[^<]*</body><x [^>]*><decline from="bob@localhost">',),
    ),
    Allowed(
        "invitations",
        "An invitation from someone not in the room: ours refuses it (forbidden; §7.8.2: an occupant"
        " invites); Prosody passes it on",
        expected=(r'id="t-outsider" to="bob@localhost"><body>',),
        actual=(r'id="t-outsider"[^>]*type="error"><error type="auth"><forbidden',),
    ),
    # -- leaving ---------------------------------------------------------------------
    Allowed(
        None,
        "Destroying the room (in destroy and tombstone): each occupant's own presence says affiliation"
        " 'none', as XEP-0045's example (§10.9); Prosody's keeps the occupant's affiliation (owner)",
        expected=(r'<item affiliation="owner" jid="alice@localhost/1" role="none"/><status code="110"/>',),
        actual=(r'<item affiliation="none" jid="alice@localhost/1" role="none"/><status code="110"/>',),
    ),
    Allowed(
        "bounced_client",
        "An occupant whose client bounced an error is removed as a kick (307) for that reason (333,"
        " XEP-0045's status code for a removal because of an error); Prosody sends 333 alone, and"
        " also to the client that bounced, which cannot hear it",
        expected=(r'type="unavailable">(<occupant-id[^>]*/>)?<status>Kicked: service unavailable</status>',),
        actual=(r'<status code="307"/><status code="333"/>',),
    ),
]

#: Differences inside stanzas that both send, rewritten away before comparing.
REWRITES: list[Rewrite] = [
    OCCUPANT_IDS,
    Rewrite(
        "An error we return carries the request's payload back (RFC 6120 §8.3.1 allows it);"
        " Prosody's MUC returns the error alone",
        r'^(<(?:iq|message|presence) [^>]*type="error"[^>]*>)(.*)(</(?:iq|message|presence)>)$',
        _payload_dropped,
        side="actual",
    ),
    Rewrite(
        "An error's 'by' (RFC 6120 §8.3.2: optional): Prosody names itself in some errors, ours only in"
        " a tombstone's gone (as Prosody there); compared without it",
        r'<error by="[^"]*"',
        "<error",
        side="both",
    ),
    Rewrite(
        "A false boolean field: Prosody leaves the value out, ours says 0 (XEP-0004 §3.3: the same)",
        r'(<field type="boolean" var="[^"]*")/>',
        r"\1><value>0</value></field>",
    ),
    Rewrite(
        "An empty text field: an empty value or none (XEP-0004: the same)",
        r'(<field [^>]*var="[^"]*")><value/></field>',
        r"\1/>",
        side="both",
    ),
]

#: Where ours through ejabberd differs from ours through Prosody: ejabberd's c2s changes what it delivers.
#: None is left once normalised. What ejabberd 23.01 changes, seen on the raw stanzas, is masked by the
#: normalisation: Prosody stamps xml:lang="en" on every stanza it delivers from the component, ejabberd
#: only on a reflected groupchat message (the sender's, kept); and ejabberd re-serialises a message's
#: children in another order (occupant-id and stanza-id before the body, where ours and Prosody put
#: the body first).
EJABBERD: list[Allowed] = []


# -- the runs ---------------------------------------------------------------------


async def _run_side(side_factory: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, fn in SCENARIOS.items():
        side = side_factory()
        try:
            out[name] = await play(fn, side)
        except Exception as error:  # reported by the scenario's own test
            out[name] = error
    return out


@pytest.fixture(scope="module")
def runs(servers: Servers) -> dict[str, dict[str, Any]]:
    """Every scenario's logs on every side: ``runs[side][scenario][actor]``."""

    def factory(tag: str, server: Any, service: str) -> Any:
        return lambda: Side(tag, server, service, servers.passwords)

    sides = {"oracle": factory("p", servers.prosody, ORACLE), "ours": factory("o", servers.prosody, OURS)}
    if servers.ejabberd is not None:
        sides["ejabberd"] = factory("e", servers.ejabberd, OURS)

    async def everything() -> list[dict[str, Any]]:
        return await asyncio.gather(*(_run_side(f) for f in sides.values()))

    results = dict(zip(sides, asyncio.run(asyncio.wait_for(everything(), 240)), strict=True))
    dump = os.environ.get("NETHERFIELD_INTEROP_DUMP")
    if dump:  # every side's logs, one file per scenario and side, to read a difference in full
        for side, scenarios in results.items():
            for name, logs in scenarios.items():
                text = str(logs) if isinstance(logs, Exception) else "\n".join(
                    f"{label}: {line}" for label, lines in logs.items() for line in lines
                )
                Path(dump, f"{name}.{side}.txt").write_text(text + "\n", encoding="utf-8")
    return results


def _logs(runs: dict[str, dict[str, Any]], side: str, name: str) -> dict[str, list[str]]:
    result = runs[side][name]
    if isinstance(result, Exception):
        raise result
    return result  # type: ignore[no-any-return]


def _report(problems: list[str], unused: list[Allowed]) -> str:
    lines = list(problems)
    lines += [f"no longer differs (strike it from the list): {entry.reason}" for entry in unused]
    return "\n".join(lines)


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_like_prosody(runs: dict[str, dict[str, Any]], name: str) -> None:
    """Each actor receives what Prosody's own MUC sends it, but for the allowed differences."""
    problems, unused = compare(name, _logs(runs, "oracle", name), _logs(runs, "ours", name), ALLOWED, REWRITES)
    assert not problems and not unused, _report(problems, unused)


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_same_through_ejabberd(runs: dict[str, dict[str, Any]], name: str) -> None:
    """Through ejabberd's ejabberd_service our MUC sends what it sends through Prosody."""
    if "ejabberd" not in runs:
        pytest.skip("ejabberd is not installed")
    problems, unused = compare(name, _logs(runs, "ours", name), _logs(runs, "ejabberd", name), EJABBERD, [OCCUPANT_IDS])
    assert not problems and not unused, _report(problems, unused)


def test_every_listed_difference_still_occurs(runs: dict[str, dict[str, Any]]) -> None:
    """An entry of the lists that no scenario needs any more describes a difference that is gone."""
    played = [
        (name, runs["oracle"][name], runs["ours"][name])
        for name in SCENARIOS
        if not isinstance(runs["oracle"][name], Exception) and not isinstance(runs["ours"][name], Exception)
    ]
    used_allowed, used_rewrites = used_entries(played, ALLOWED, REWRITES)
    stale = [entry.reason for index, entry in enumerate(ALLOWED) if entry.scenario is None and index not in used_allowed]
    stale += [entry.reason for index, entry in enumerate(REWRITES) if index not in used_rewrites]
    assert not stale, "no longer differs (strike it from the list):\n" + "\n".join(stale)
