"""What the employee is told: plain text for every platform, Block Kit for Slack.

Pure functions from a decision to words. Block Kit is only JSON, so building it here keeps the
outbox payload complete at the moment the request commits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from routing.model import Decision

ROUTE_LABEL = {
    "msp": "our IT service desk (MSP)",
    "internal": "in-house IT",
    "page": "in-house IT, and the on-call engineer has been paged",
}

SECRET_LABEL = {
    "password": "a password",
    "aws-key": "an AWS key",
    "github-token": "a GitHub token",
    "slack-token": "a Slack token",
    "slack-webhook": "a Slack webhook URL",
    "azure-key": "an Azure key",
    "google-api-key": "a Google API key",
    "private-key": "a private key",
    "jwt": "a JSON Web Token",
    "bearer-token": "a bearer token",
    "card-number": "a card number",
    "secret": "a secret",
}


@dataclass(frozen=True, slots=True)
class Reply:
    """The answer to one request, platform-neutral."""

    text: str
    ticket: str | None = None
    route: str | None = None
    queue: str | None = None
    why: str | None = None
    warning: str | None = None


def secret_warning(kinds: tuple[str, ...]) -> str | None:
    """The rotate-it warning for removed secrets, or None when nothing was removed."""
    if not kinds:
        return None
    names = [SECRET_LABEL.get(k, "a secret") for k in kinds]
    listed = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
    return (
        f"I removed {listed} from your message before storing or forwarding it. "
        "Anything posted in chat should be treated as exposed: please change or revoke it now."
    )


def intake_reply(ticket: str, decision: Decision, redacted_kinds: tuple[str, ...] = ()) -> Reply:
    """The reply to an accepted request: ticket id, where it went, and why."""
    where = ROUTE_LABEL.get(decision.route, decision.route)
    if decision.fail_closed:
        lead = f"Ticket {ticket} is with in-house IT for triage (I could not classify it automatically)."
    elif decision.route == "page":
        lead = f"This looks critical. Ticket {ticket} is with {where}."
    else:
        lead = f"Ticket {ticket} is with {where}."
    why = f"Queue {decision.queue}; {decision.why} (rules v{decision.ruleset_version})."
    warning = secret_warning(redacted_kinds)
    text = f"{lead}\nWhy: {why}" + (f"\n:warning: {warning}" if warning else "")
    return Reply(text=text, ticket=ticket, route=decision.route, queue=decision.queue, why=why, warning=warning)


def slack_blocks(reply: Reply) -> list[dict[str, Any]]:
    """Block Kit for a reply: the lead line, a context line with the reason, the warning if any."""
    lead = reply.text.split("\n", 1)[0]
    blocks: list[dict[str, Any]] = [{"type": "section", "text": {"type": "mrkdwn", "text": _escape(lead)}}]
    if reply.why:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": _escape("Why: " + reply.why)}]})
    if reply.warning:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": ":warning: " + _escape(reply.warning)}})
    return blocks


def _escape(text: str) -> str:
    """Slack mrkdwn control characters (https://api.slack.com/reference/surfaces/formatting#escaping)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
