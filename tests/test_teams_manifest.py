"""The Teams app package in docs/teams: a manifest the bot actually honours, and icons of the right size."""

from __future__ import annotations

import json
import re
import struct
import zlib
from pathlib import Path

from bot.teams_bot import COMMAND, MENU_COMMANDS

TEAMS_DOCS = Path(__file__).resolve().parent.parent / "docs" / "teams"
GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def manifest() -> dict:
    return json.loads((TEAMS_DOCS / "manifest.json").read_text(encoding="utf-8"))


def test_manifest_shape() -> None:
    m = manifest()
    assert m["manifestVersion"] == "1.16" and GUID.fullmatch(m["id"])
    assert len(m["name"]["short"]) <= 30 and len(m["description"]["short"]) <= 80
    assert len(m["description"]["full"]) <= 4000
    [bot] = m["bots"]
    assert GUID.fullmatch(bot["botId"]) and bot["botId"] == m["id"]
    assert set(bot["scopes"]) == {"personal", "team", "groupChat"}
    assert m["icons"] == {"color": "color.png", "outline": "outline.png"}


def test_every_menu_command_is_handled_by_the_bot() -> None:
    [commands] = manifest()["bots"][0]["commandLists"]
    assert set(commands["scopes"]) == {"personal", "team", "groupChat"}
    titles = [c["title"] for c in commands["commands"]]
    assert titles == ["help", "/handoff"]
    for command in commands["commands"]:
        assert len(command["title"]) <= 32 and len(command["description"]) <= 128
        # picking an entry puts its title in the compose box: the bot must treat it as a command
        assert command["title"].lower() in MENU_COMMANDS or COMMAND.fullmatch(command["title"] + " my laptop")


def _png(path: Path) -> tuple[int, int, list[bytes]]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height, depth, colour = struct.unpack(">IIBB", data[16:26])
    assert (depth, colour) == (8, 6)  # 8-bit RGBA, as make_icons.py writes
    idat = data[data.index(b"IDAT") + 4:]
    raw = zlib.decompressobj().decompress(idat)
    stride = 1 + 4 * width
    rows = [raw[i * stride + 1:(i + 1) * stride] for i in range(height)]
    return width, height, rows


def test_icons() -> None:
    w, h, rows = _png(TEAMS_DOCS / "color.png")
    assert (w, h) == (192, 192)
    assert all(row[i + 3] == 255 for row in rows for i in range(0, len(row), 4))  # opaque
    w, h, rows = _png(TEAMS_DOCS / "outline.png")
    assert (w, h) == (32, 32)
    pixels = {bytes(row[i:i + 4]) for row in rows for i in range(0, len(row), 4)}
    assert pixels == {b"\xff\xff\xff\xff", b"\x00\x00\x00\x00"}  # white on transparent only
