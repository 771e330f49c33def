"""Where Teams people and channels can be reached later: conversation references, stored in batches.

:class:`ConversationBook` is fed by the Teams edge (:mod:`bot.teams`) with every 1:1 chat
(``user:<id>``), channel (``channel:<id>``) and group chat (``chat:<id>``) it sees; proactive
messages (``internal``/``admin.alert`` channel posts, ``chat.notify`` DMs and pages) read them back.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.teams_cards import TeamsActivity
from storage import service

log = logging.getLogger(__name__)


class ConversationBook:
    """Where requesters and channels can be reached later: conversation references, stored in batches.

    A reference is written only when it differs from what this process last wrote for its key, and
    pending ones go to the database together every ``interval`` seconds in one transaction, off the
    request path: a burst of messages does not double the write transactions (SQLite has a single
    writer). A crash loses at most ``interval`` seconds of references; the next message from that
    person or channel stores it again, and every ticket keeps its own reply address meanwhile.
    """

    def __init__(self, *, sessionmaker: async_sessionmaker[AsyncSession], clock: Callable[[], datetime],
                 interval: float = 0.25, remembered: int = 10_000) -> None:
        self._sessionmaker = sessionmaker
        self._clock = clock
        self._interval = interval
        self._pending: dict[str, tuple[str, str, TeamsActivity, dict[str, Any]]] = {}
        self._seen: OrderedDict[str, str] = OrderedDict()
        self._seen_max = remembered
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def note(self, act: TeamsActivity) -> None:
        """Queue the reference of a 1:1 chat (``user:<id>``), channel or group chat, if it changed."""
        reference = act.reference()
        if act.conversation_type in ("personal", ""):
            kind, key = "user", f"user:{act.user_id}"
        else:
            kind = "channel" if act.conversation_type == "channel" else "chat"
            key = f"{kind}:{act.team_channel_id or act.base_conversation_id}"
            reference.pop("user", None)  # a channel is not anyone's; keeps the row stable
        if len(key) > 255:
            key = f"{kind}:sha256:{hashlib.sha256(key.encode()).hexdigest()}"
        fingerprint = json.dumps(reference, sort_keys=True)
        if self._seen.get(key) == fingerprint:
            self._seen.move_to_end(key)
            return
        self._pending[key] = (kind, fingerprint, act, reference)
        self._wake.set()
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="teams-conversation-refs")

    async def flush(self) -> int:
        """Write what is pending in one transaction; returns how many references were written."""
        batch, self._pending = self._pending, {}
        if not batch:
            return 0
        try:
            async with self._sessionmaker.begin() as session:
                now = self._clock()
                for key, (kind, _, act, reference) in batch.items():
                    await service.upsert_conversation_ref(
                        session=session, platform="teams", key=key, kind=kind, service_url=act.service_url,
                        conversation_id=reference["conversation_id"], reference=reference, now=now,
                        tenant_id=act.tenant_id,
                    )
        except BaseException:  # also cancellation at shutdown: close() writes them
            for key, item in batch.items():  # keep them for the next try, unless a newer one came
                self._pending.setdefault(key, item)
            raise
        for key, (_, fingerprint, _, _) in batch.items():
            self._seen[key] = fingerprint
            self._seen.move_to_end(key)
        while len(self._seen) > self._seen_max:
            self._seen.popitem(last=False)
        return len(batch)

    async def _run(self) -> None:
        delay = self._interval
        while True:
            await self._wake.wait()
            await asyncio.sleep(delay)  # let a burst gather
            self._wake.clear()
            try:
                await self.flush()
                delay = self._interval
            except Exception as exc:  # noqa: BLE001 - retried; the request path never waits on this
                log.warning("teams: storing %d conversation references failed (%s); retrying",
                            len(self._pending), type(exc).__name__)
                delay = min(delay * 2, 30.0)
                self._wake.set()

    async def close(self) -> None:
        """Stop the writer and write what is still pending."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        try:
            await self.flush()
        except Exception as exc:  # noqa: BLE001 - shutting down; logged
            log.warning("teams: %d conversation references not stored at shutdown (%s)", len(self._pending),
                        type(exc).__name__)
