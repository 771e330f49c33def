"""Slack's message format becomes what the employee typed before anything is classified or stored."""

from __future__ import annotations

import pytest

from bot.slack_shape import plain_text


@pytest.mark.parametrize(
    ("slack", "plain"),
    [
        ("<@U0BOT> printer jammed", "printer jammed"),
        ("R&amp;D printer &lt;3rd floor&gt; is jammed", "R&D printer <3rd floor> is jammed"),
        ("see <https://wiki.example/vpn?a=1&amp;b=2|the wiki>", "see the wiki (https://wiki.example/vpn?a=1&b=2)"),
        ("<https://status.example>", "https://status.example"),
        ("mail <mailto:ana@example.com|ana@example.com>", "mail ana@example.com"),
        ("posted in <#C0123|it-help> <!here>", "posted in #it-help @here"),
        ("<!subteam^S0ADMINS|@it-admins> help", "@it-admins help"),
        ("&amp;lt; stays literal", "&lt; stays literal"),  # unescaped once, as Slack escaped once
        ("a &lt;b&gt; c", "a <b> c"),
    ],
)
def test_plain_text(slack: str, plain: str) -> None:
    assert plain_text(slack).strip() == plain


def test_commands_keep_the_people_they_name() -> None:
    assert plain_text("oncall override <@U0ANA|ana> --until 18:00", keep_mentions=True) == \
        "oncall override <@U0ANA|ana> --until 18:00"
    assert plain_text('rules add x --regex "a&lt;b"', keep_mentions=True) == 'rules add x --regex "a<b"'
