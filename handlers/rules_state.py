"""The active rule set: stored versions, the one that classifies, and keeping replicas in step.

The database holds every version (immutable); the newest is active. At start-up the rules in
``app.yaml`` are stored as a new version when they differ from the last version imported from the
file, so editing the file and restarting still works, while chat edits (a later feature) publish
versions of their own. Each replica polls the newest version number and recompiles on change.

A stored version this release cannot use (a limit tightened by an upgrade, say the total size of a rule
set's regexes) does not stop the service: the newest usable version stays or, at start-up, is loaded
instead, and the refusal is logged as an error naming both versions and what is wrong, once per version.
Publishing a valid version (or restarting with a changed ``app.yaml``) ends it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from routing.engine import Classifier, compile_ruleset
from routing.rules import content_hash, ruleset_from_dict, ruleset_to_dict
from storage import service
from storage.models import RulesetVersion

log = logging.getLogger(__name__)


class ActiveRules:
    """Holds the compiled classifier of the newest stored rule-set version."""

    def __init__(self, *, sessionmaker: async_sessionmaker[AsyncSession], clock: Callable[[], datetime]) -> None:
        self._sessionmaker = sessionmaker
        self._clock = clock
        self._classifier: Classifier | None = None
        self._refused: int | None = None  # the newest stored version, when this release cannot use it

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
        """Load the newest version if it is not the one loaded. Returns True when it changed.

        A newest version that cannot be used is logged once and skipped: the loaded rules stay, or,
        when none are loaded yet (start-up), the newest usable version is loaded.
        """
        async with self._sessionmaker() as session:
            latest = await service.latest_ruleset(session=session)
        if latest is None:
            raise RuntimeError("no rule set is stored")
        loaded = self._classifier
        if not force and loaded is not None and latest.version in (loaded.version, self._refused):
            return False
        try:
            classifier = _compiled(latest)
        except ValueError as exc:
            self._refused = latest.version
            if loaded is not None and not force:
                log.error("stored rules version %d cannot be used (%s); keeping version %d",
                          latest.version, exc, loaded.version)
                return False
            classifier = await self._newest_usable(below=latest.version)
            log.error("stored rules version %d cannot be used (%s); using version %d, the newest that can",
                      latest.version, exc, classifier.version)
        if loaded is not None and classifier.version == loaded.version:
            return False
        self._classifier = classifier
        log.info("rules version %d active (%d rules)", classifier.version, classifier.rule_count)
        return True

    async def _newest_usable(self, *, below: int, depth: int = 50) -> Classifier:
        async with self._sessionmaker() as session:
            older = [v for v in await service.list_rulesets(session=session, limit=depth + 1) if v.version < below]
        for version in older:
            try:
                return _compiled(version)
            except ValueError:
                continue
        raise RuntimeError(f"none of the newest {depth + 1} stored rule set versions can be used; "
                           "fix app.yaml and restart (it is stored as a new version)")

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


def _compiled(stored: RulesetVersion) -> Classifier:
    """The classifier of a stored version; ``ValueError`` (a :class:`~routing.rules.RuleSetError`) when
    this release refuses it."""
    return compile_ruleset(ruleset_from_dict(stored.content, version=stored.version))
