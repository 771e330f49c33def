"""The active rule set: stored versions, the one that classifies, and keeping replicas in step.

The database holds every version (immutable); the newest is active. At start-up the rules in
``app.yaml`` are stored as a new version when they differ from the last version imported from the
file, so editing the file and restarting still works, while chat edits (a later feature) publish
versions of their own. Each replica polls the newest version number and recompiles on change.

The live version is the newest stored one this release can use. One it cannot use (a limit tightened
by an upgrade, say the total size of a rule set's regexes, or a feature of a newer release after a
rollback of the release) does not stop the service: it is skipped, and the refusal is logged once as
an error naming it, what is wrong and the version used instead. The rules admin commands see the same
live version (:meth:`ActiveRules.live`), so a publish or a rollback from chat ends it, as does a
restart with a changed ``app.yaml``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from routing.engine import Classifier, compile_ruleset
from routing.rules import content_hash, ruleset_from_dict, ruleset_to_dict
from storage import service
from storage.models import RulesetVersion

log = logging.getLogger(__name__)

#: Stored versions searched, newest first, for one this release can use.
_DEPTH = 50


class RuleSource(Protocol):
    """What intake classifies with: :class:`ActiveRules`, or :class:`FixedRules` for a dry run."""

    @property
    def classifier(self) -> Classifier: ...


@dataclass(frozen=True, slots=True)
class FixedRules:
    """One compiled rule set that never changes: ``handoff classify`` tries app.yaml without storing it."""

    classifier: Classifier


class ActiveRules:
    """Holds the compiled classifier of the newest stored rule-set version."""

    def __init__(self, *, sessionmaker: async_sessionmaker[AsyncSession], clock: Callable[[], datetime]) -> None:
        self._sessionmaker = sessionmaker
        self._clock = clock
        self._classifier: Classifier | None = None
        self._unusable: set[int] = set()  # stored versions this release refuses (each logged once)
        # While the newest stored version is refused: (its number, the live row, its classifier).
        self._fallback: tuple[int, RulesetVersion, Classifier] | None = None

    @property
    def classifier(self) -> Classifier:
        if self._classifier is None:
            raise RuntimeError("rules not loaded: call sync_from_file() or refresh() first")
        return self._classifier

    @property
    def version(self) -> int:
        return self.classifier.version

    async def sync_from_file(self, routing: Mapping[str, Any], *, author: str = "app.yaml") -> Classifier:
        """Store the file's rules as a new version if they changed since last imported, then load."""
        content = ruleset_to_dict(ruleset_from_dict(routing))
        digest = content_hash(content)
        async with self._sessionmaker.begin() as session:
            await service.lock_rulesets(session=session)  # replicas starting together store the file once
            last_file = await service.latest_ruleset_from_source(session=session, source="file")
            if last_file is None or last_file.content_hash != digest:
                saved = await service.save_ruleset(
                    session=session, content=content, content_hash=digest, source="file", author=author,
                    note="imported from app.yaml", now=self._clock(),
                )
                await service.audit(
                    session=session, actor=author, action="rules.import-file", target=f"v{saved.version}",
                    allowed=True, detail={"content_hash": digest}, now=self._clock(),
                )
                log.info("stored the rules of app.yaml as version %d", saved.version)
        await self.refresh(force=True)
        return self.classifier

    async def refresh(self, *, force: bool = False) -> bool:
        """Load the live version (:meth:`live`) if it is not the one loaded. Returns True when it changed."""
        async with self._sessionmaker() as session:
            live = await self._live(session)
        if live is None:
            raise RuntimeError("no rule set is stored")
        row, classifier = live
        loaded = self._classifier
        if not force and loaded is not None and classifier.version == loaded.version:
            return False
        self._classifier = classifier
        log.info("rules version %d active (%d rules)", row.version, classifier.rule_count)
        return True

    async def live(self, session: AsyncSession) -> RulesetVersion | None:
        """The live version: the newest stored one this release can use (None when none is stored)."""
        live = await self._live(session)
        return live[0] if live is not None else None

    async def _live(self, session: AsyncSession) -> tuple[RulesetVersion, Classifier] | None:
        latest = await service.latest_ruleset(session=session)
        if latest is None:
            return None
        loaded = self._classifier
        if loaded is not None and latest.version == loaded.version:
            return latest, loaded
        if self._fallback is not None and self._fallback[0] == latest.version:
            return self._fallback[1], self._fallback[2]
        classifier, why = self._try(latest)
        if classifier is not None:
            self._fallback = None
            return latest, classifier
        refused = [(latest.version, why)]
        for row in await service.list_rulesets(session=session, limit=_DEPTH):
            if row.version >= latest.version:
                continue
            if loaded is not None and row.version == loaded.version:
                classifier = loaded
            else:
                classifier, why = self._try(row)
            if classifier is not None:
                self._fallback = (latest.version, row, classifier)
                for version, reason in refused:
                    if reason:  # refused for the first time
                        log.error("stored rules version %d cannot be used by this release (%s); using version %d, "
                                  "the newest that can: publish or roll back to replace it", version, reason, row.version)
                return row, classifier
            refused.append((row.version, why))
        first = next((reason for _, reason in refused if reason), "refused earlier")
        raise RuntimeError(f"none of the newest {_DEPTH} stored rule set versions can be used (version "
                           f"{latest.version}: {first}); fix app.yaml and restart (it is stored as a new version)")

    def _try(self, row: RulesetVersion) -> tuple[Classifier | None, str]:
        """The classifier of a stored version, or None and why this release refuses it ("" when that
        was already found out)."""
        if row.version in self._unusable:
            return None, ""
        try:
            return compile_ruleset(ruleset_from_dict(row.content, version=row.version)), ""
        except ValueError as exc:  # RuleSetError, or a term or regex the engine refuses
            self._unusable.add(row.version)
            return None, str(exc)

    async def watch(self, stop: asyncio.Event, *, interval: float = 2.0) -> None:
        """Poll for a newer version until ``stop`` is set, so every replica follows within seconds."""
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), timeout=interval)
            except TimeoutError:
                pass
            if stop.is_set():
                return
            try:
                await self.refresh()
            except Exception:  # keep the last good rules; the DB may be restarting
                log.warning("could not refresh rules; keeping version %s", self.version, exc_info=True)

