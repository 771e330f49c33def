"""A fake Bot Framework connector (the Teams ``serviceUrl``) and AAD token endpoint on loopback.

Connector routes, answering the way the Bot Connector API v3 does (``ConnectorAPI.json``, and the
recorded Teams reply in ``fixtures/teams/teams.outbound.connector.reply_to_activity.nock.json``):

* ``POST /v3/conversations/{conversationId}/activities/{activityId}`` (reply in a thread / to a
  message) and ``POST /v3/conversations/{conversationId}/activities`` (proactive send): ``201
  {"id": "1:<...>"}``. Without a bearer token this fake issued: ``401 {"message": "Authorization has
  been denied for this request."}``. A body that is not an activity object: ``400
  {"error": {"code": "BadArgument", "message": ...}}``.

Token route (Microsoft identity platform, client-credentials grant):

* ``POST /{tenant}/oauth2/v2.0/token`` with a form ``grant_type=client_credentials``,
  ``client_id``, ``client_secret``, ``scope``: ``200 {"token_type": "Bearer", "expires_in": ...,
  "ext_expires_in": ..., "access_token": ...}``; a wrong secret ``401 {"error": "invalid_client"}``;
  another grant or scope ``400``.

The module also builds the activities the connector sends *to* the bot, shaped like the recorded
Teams traffic in ``../shared/fixtures/teams/`` (a 1:1 message, a channel @mention with tenant/team
``channelData`` and a ``;messageid=`` conversation id, a card ``Action.Submit``, an invoke, the bot
added to a team); written here, not read from there, so tests run without ``/work/shared``.

Conversation and activity ids come URL-encoded in the path (``19%3A...%40thread.skype``); the fake
records them decoded in :attr:`FakeBotConnector.replies` and :attr:`FakeBotConnector.sends`, and the
path as sent in :attr:`Posted.raw_path`.
"""

from __future__ import annotations

import itertools
import secrets
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from tests.fakes.base import FakeService, client_credentials_answer

SCOPE = "https://api.botframework.com/.default"
DENIED = {"message": "Authorization has been denied for this request."}


@dataclass(frozen=True, slots=True)
class Posted:
    """One activity the bot posted."""

    seq: int
    conversation_id: str
    reply_to_id: str | None
    activity: dict[str, Any]
    authorization: str | None
    raw_path: str


class FakeBotConnector(FakeService):
    """Fake Bot Connector service plus its token endpoint.

    Args:
        app_id: The bot's app id (client id) the token endpoint accepts.
        app_password: Its client secret.
        require_auth: Refuse connector calls without a token this fake issued.
        expires_in: Lifetime of issued tokens (seconds).
    """

    def __init__(self, *, app_id: str = "", app_password: str = "", require_auth: bool = True,
                 expires_in: int = 3599) -> None:
        super().__init__()
        self.app_id = app_id
        self.app_password = app_password
        self.require_auth = require_auth
        self.expires_in = expires_in
        self.issued: list[str] = []
        self.replies: list[Posted] = []
        self.sends: list[Posted] = []
        self._ids = itertools.count(1)

    def setup(self, app: web.Application) -> None:
        app.router.add_post("/v3/conversations/{conversation}/activities/{activity}", self._reply)
        app.router.add_post("/v3/conversations/{conversation}/activities", self._send)
        app.router.add_post("/{tenant}/oauth2/v2.0/token", self._token)

    def reset(self) -> None:
        super().reset()
        self.replies.clear()
        self.sends.clear()

    def failure_body(self, status: int) -> Any:
        if status == 401:
            return DENIED
        return {"error": {"code": "ServiceError" if status >= 500 else "BadArgument", "message": f"HTTP {status}"}}

    @property
    def service_url(self) -> str:
        """Stand-in for a Teams ``serviceUrl`` (``https://smba.trafficmanager.net/amer/``)."""
        return self.url + "/"

    def token_url(self, tenant: str = "botframework.com") -> str:
        """Stand-in for ``https://login.microsoftonline.com/<tenant>/oauth2/v2.0/token``."""
        return self.url_for(f"/{tenant}/oauth2/v2.0/token")

    def token_requests(self) -> list[Any]:
        """Requests received by the token endpoint (any tenant)."""
        return [r for r in self.requests if r.path.endswith("/oauth2/v2.0/token")]

    def posted(self) -> list[Posted]:
        """Replies and proactive sends, in arrival order."""
        return sorted(self.replies + self.sends, key=lambda p: p.seq)

    # --- handlers ------------------------------------------------------------------------------
    def _authorized(self, request: web.Request) -> bool:
        if not self.require_auth:
            return True
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        return scheme == "Bearer" and token in self.issued

    def _activity(self, request: web.Request) -> dict[str, Any] | web.Response:
        body = self.record_of(request).json
        if not isinstance(body, dict) or not isinstance(body.get("type"), str):
            return web.json_response(
                {"error": {"code": "BadArgument", "message": "Activity is missing or has no type"}}, status=400
            )
        return body

    async def _reply(self, request: web.Request) -> web.Response:
        return self._post(request, request.match_info["activity"])

    async def _send(self, request: web.Request) -> web.Response:
        return self._post(request, None)

    def _post(self, request: web.Request, reply_to: str | None) -> web.Response:
        if not self._authorized(request):
            return web.json_response(DENIED, status=401)
        activity = self._activity(request)
        if isinstance(activity, web.Response):
            return activity
        seq = next(self._ids)
        posted = Posted(seq, request.match_info["conversation"], reply_to, activity,
                        request.headers.get("Authorization"), request.raw_path)
        (self.replies if reply_to is not None else self.sends).append(posted)
        return web.json_response({"id": f"1:{seq}{secrets.token_hex(4)}"}, status=201)

    async def _token(self, request: web.Request) -> web.Response:
        return client_credentials_answer(
            self.record_of(request).form or {}, app_id=self.app_id, app_password=self.app_password,
            scope=SCOPE, prefix="bf-", issued=self.issued, expires_in=self.expires_in,
        )


# --- activities as Teams sends them ----------------------------------------------------------------

APP_ID = "eac5e5c6-ab14-4f50-80cb-49213fe51b1a"
APP_PASSWORD = "teams-client-secret-for-tests"
BOT = {"id": f"28:{APP_ID}", "name": "handoff"}
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
USER = {"id": "29:1kbOecyrymSn1FtrbJlQNF_BvhIpb7CLGbmjaTldT8A8tXXphjq4BcA2KfWGwoI-ahbEJ_Og1syGOt68MsLId1Q",
        "name": "Tien Suwandy", "aadObjectId": "6d415fdd-f97e-4f70-ac45-e69601e4ecb2"}
OTHER_USER = {"id": "29:1CFIxRJBLjT_io3iNsDZxMk_4YPWQmr3DZUM1I6ihf5L2ocCDqg9S1vkHK6kRdGfK1P_2LFE2nQqFIvdu-GBOZA",
              "name": "Dave Taniguchi", "aadObjectId": "6b703ce3-6d14-4fe6-b90c-dc5f03657ae4"}
PERSONAL_CONVERSATION = ("a:1VF4K2uXl-hg-wn2SSWJZYK7Cqox93Xp82wekVXkbOSaJo1L8hynrdocgKu3ydRKxx6P5_u9d8yFcLjugHuhCQ7x"
                         "mn25K18NfzjiKSskzi5OX0bbe2nRrNJorygvjUL4v")
CHANNEL = "19:097e6717fd7245bdbeba6baa13840db8@thread.skype"

_ids = itertools.count(1571691217375)


def next_id() -> str:
    """A fresh Teams message id (Teams uses millisecond timestamps)."""
    return str(next(_ids))


def _envelope(service_url: str, **fields: Any) -> dict[str, Any]:
    return {
        "timestamp": "2019-10-21T20:53:37.385Z", "localTimestamp": "2019-10-21T20:53:37.385Z",
        "channelId": "msteams", "serviceUrl": service_url, "recipient": dict(BOT), "locale": "en-US",
        "entities": [{"locale": "en-US", "country": "US", "platform": "Windows", "type": "clientInfo"}],
        **fields,
    }


def personal_message(service_url: str, text: str, *, activity_id: str | None = None,
                     conversation_id: str = PERSONAL_CONVERSATION, user: dict[str, Any] = USER) -> dict[str, Any]:
    """A 1:1 chat message (``conversationType: personal``, ``channelData`` with only the tenant)."""
    return _envelope(
        service_url, text=text, textFormat="plain", type="message", id=activity_id or next_id(), **{"from": dict(user)},
        conversation={"conversationType": "personal", "tenantId": TENANT, "id": conversation_id},
        channelData={"tenant": {"id": TENANT}},
    )


def channel_mention(service_url: str, text: str, *, activity_id: str | None = None,
                    mention_name: str = "handoff") -> dict[str, Any]:
    """A channel post that @mentions the bot: ``<at>name</at>`` in the text and a mention entity."""
    activity_id = activity_id or next_id()
    at = f"<at>{mention_name}</at>"
    body = _envelope(
        service_url, text=f"{at} {text}\n", textFormat="plain", type="message", id=activity_id,
        **{"from": dict(OTHER_USER)},
        attachments=[{"contentType": "text/html", "content": f"<div><div><span itemscope=\"\" itemtype=\"http://"
                      f"schema.skype.com/Mention\" itemid=\"0\">{mention_name}</span> {text}</div>\n</div>"}],
        conversation={"isGroup": True, "conversationType": "channel", "tenantId": TENANT,
                      "id": f"{CHANNEL};messageid={activity_id}"},
        channelData={"teamsChannelId": CHANNEL, "teamsTeamId": CHANNEL, "channel": {"id": CHANNEL},
                     "team": {"id": CHANNEL}, "tenant": {"id": TENANT}},
    )
    body["entities"].insert(0, {"mentioned": {"id": BOT["id"], "name": mention_name}, "text": at, "type": "mention"})
    return body


def channel_message(service_url: str, text: str) -> dict[str, Any]:
    """A channel post that does not mention the bot (delivered with RSC permissions only)."""
    body = channel_mention(service_url, text)
    body["text"] = text
    body["entities"] = [e for e in body["entities"] if e["type"] != "mention"]
    return body


def card_submit(service_url: str) -> dict[str, Any]:
    """An Adaptive/hero card ``Action.Submit``: a message with ``value`` and no text."""
    return _envelope(
        service_url, type="message", id="f:6208521873967276741", replyToId="1:1TWmOfxTUmAF9e9ZcTMaIyn0BMDfPsLjrHyCqUsBSERw",
        value={"key": "value", "x": "herocard"}, **{"from": dict(OTHER_USER)},
        conversation={"isGroup": True, "conversationType": "channel", "tenantId": TENANT,
                      "id": f"{CHANNEL};messageid=1571539235218"},
        channelData={"channel": {"id": CHANNEL}, "team": {"id": CHANNEL}, "tenant": {"id": TENANT},
                     "source": {"name": "message"}},
    )


def invoke(service_url: str, name: str | None = None, value: Any = None) -> dict[str, Any]:
    """An ``invoke`` (a card button); without a name like the recorded hero-card invoke."""
    body = _envelope(
        service_url, type="invoke", id="f:843452203754701680", replyToId="1:1g3Sc3hSqAvmoAIhMskhBW8kahcBMC2urNd_TZF79abY",
        value=value if value is not None else {"key": "value"}, **{"from": dict(OTHER_USER)},
        conversation={"isGroup": True, "conversationType": "channel", "tenantId": TENANT,
                      "id": f"{CHANNEL};messageid=1571537152320"},
        channelData={"channel": {"id": CHANNEL}, "team": {"id": CHANNEL}, "tenant": {"id": TENANT},
                     "source": {"name": "message"}},
    )
    if name:
        body["name"] = name
    return body


def bot_added_to_team(service_url: str) -> dict[str, Any]:
    """``conversationUpdate`` with the bot in ``membersAdded`` (the app was installed in a team)."""
    return _envelope(
        service_url, type="conversationUpdate", id="f:2ad40fba-2b9c-9a8c-d48b-27f72dcc0f71",
        membersAdded=[{"id": BOT["id"]}], **{"from": dict(OTHER_USER)},
        conversation={"isGroup": True, "conversationType": "channel", "tenantId": TENANT, "id": CHANNEL},
        channelData={"team": {"id": CHANNEL, "name": "IT on-call", "aadGroupId": "2c02739d-4041-4ef2-b8b8-75508bc04808"},
                     "eventType": "teamMemberAdded", "tenant": {"id": TENANT}},
    )


def card_execute(service_url: str, verb: str, data: Any, *, personal: bool = False,
                 activity_id: str | None = None) -> dict[str, Any]:
    """An ``adaptiveCard/action`` invoke (``Action.Execute``), from a channel post or a 1:1 chat.

    No real recording exists (see ``fixtures/teams/SOURCES.md``): the envelope is the recorded invoke's,
    the ``value`` the documented Universal Actions shape.
    """
    body = invoke(service_url, "adaptiveCard/action",
                  {"action": {"type": "Action.Execute", "id": "", "verb": verb, "data": data}, "trigger": "manual"})
    body["id"] = activity_id or f"f:{next_id()}"
    if personal:
        body["from"] = dict(USER)
        body["conversation"] = {"conversationType": "personal", "tenantId": TENANT, "id": PERSONAL_CONVERSATION}
        body["channelData"] = {"tenant": {"id": TENANT}, "source": {"name": "message"}}
    return body


def card_submit_value(service_url: str, value: Any, *, activity_id: str | None = None) -> dict[str, Any]:
    """An ``Action.Submit`` from a card in a channel: a message whose ``value`` is the action's data."""
    body = card_submit(service_url)
    body["value"] = value
    body["id"] = activity_id or f"f:{next_id()}"
    return body


def channel_reply(service_url: str, text: str, *, root_id: str, mention: bool = False,
                  activity_id: str | None = None) -> dict[str, Any]:
    """A reply in a channel thread (reply chain ``…;messageid=<root_id>``), mentioning the bot or not."""
    body = channel_mention(service_url, text, activity_id=activity_id) if mention else channel_message(service_url, text)
    if not mention and activity_id:
        body["id"] = activity_id
    body["conversation"]["id"] = f"{CHANNEL};messageid={root_id}"
    return body
