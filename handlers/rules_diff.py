"""Diffs of two ``routing:`` mappings (``ruleset_to_dict`` form), rule by rule, for admins to read.

Time windows read as ``rules list`` shows them (``active mon-fri 08:00-18:00 → mon-fri 07:00-19:00``)
and a changed ``timezone`` is its own line, naming the rules whose windows it moves.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from routing.windows import describe, parse_windows
from storage.models import RulesetVersion

#: Rule keys holding time windows, and how an empty list reads.
WINDOW_KEYS = {"active": "any time", "mute": "none"}


@dataclass(frozen=True, slots=True)
class RuleDiff:
    """What changes from ``old`` to ``new``, rule by rule.

    ``timezone`` is ``(old, new)`` when the zone changed, ``timed`` the rules with windows it moves,
    ``windows`` the windows of added rules (``(id, "only …; muted …")``).
    """

    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    changed: tuple[tuple[str, tuple[str, ...]], ...] = ()
    moved: tuple[str, ...] = ()
    queues: tuple[str, ...] = ()
    positions: tuple[tuple[str, int], ...] = ()
    timezone: tuple[str, str] | None = None
    timed: tuple[str, ...] = ()
    windows: tuple[tuple[str, str], ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed or self.moved or self.queues or self.timezone)

    @property
    def rule_ids(self) -> frozenset[str]:
        """Every rule that is added, removed, changed or moved: the rules a replay must look at.

        A changed ``timezone`` is not in here; :func:`handlers.rules_replay.decisive_changes` adds the
        rules with windows it affects.
        """
        return frozenset((*self.added, *self.removed, *(i for i, _ in self.changed), *self.moved))

    def lines(self) -> list[str]:
        where = dict(self.positions)
        timing = dict(self.windows)
        out = [f"+ added `{i}` at position {where.get(i, 0) + 1}" + (f", {timing[i]}" if i in timing else "")
               for i in self.added]
        out += [f"- removed `{i}`" for i in self.removed]
        out += [f"~ `{i}`: " + "; ".join(parts) for i, parts in self.changed]
        order = [i for i, _ in sorted(self.positions, key=lambda p: p[1])]
        for i in self.moved:
            n = where.get(i, 0)
            after = f", after `{order[n - 1]}`" if 0 < n <= len(order) else ", first"
            out.append(f"↕ `{i}` now at position {n + 1}{after}")
        out += [f"~ queues: {q}" for q in self.queues]
        if self.timezone is not None:
            old, new = self.timezone
            named = ", ".join(f"`{i}`" for i in self.timed[:10]) + (" …" if len(self.timed) > 10 else "")
            moves = f": the windows of {named} are read in {new} now" if self.timed else " (no rule has time windows)"
            out.append(f"~ timezone {old} → {new}{moves}")
        return out

    def as_dict(self) -> dict[str, Any]:
        out = {"added": list(self.added), "removed": list(self.removed), "moved": list(self.moved),
               "changed": {i: list(p) for i, p in self.changed}, "queues": list(self.queues)}
        if self.timezone is not None:
            out["timezone"] = list(self.timezone)
        return out


@dataclass(frozen=True, slots=True)
class _RawWindow:
    """A window mapping in the attribute shape :func:`routing.windows.parse_windows` reads."""

    days: Any
    from_: Any
    to: Any


def describe_windows(items: Any, empty: str = "none") -> str:
    """Window mappings (``{days, from, to}``) as ``rules list`` shows them: ``mon-fri 08:00-18:00; sat 10:00-14:00``.

    Anything that does not parse is shown as written rather than hidden.
    """
    if not items:
        return empty
    if not isinstance(items, Sequence) or isinstance(items, str) or not all(isinstance(w, Mapping) for w in items):
        return str(items)[:120]
    windows, problems = parse_windows([_RawWindow(w.get("days"), w.get("from"), w.get("to")) for w in items], "")
    if problems or len(windows) != len(items):
        return "; ".join(f"{w.get('days', '')} {w.get('from')}-{w.get('to')}".strip() for w in items)[:200]
    return describe(windows)


def timing(rule: Mapping[str, Any]) -> str:
    """``only mon-fri 08:00-18:00; muted sat 00:00-24:00`` for a rule mapping ("" without windows)."""
    parts = []
    if rule.get("active"):
        parts.append(f"only {describe_windows(rule['active'])}")
    if rule.get("mute"):
        ignored = " (ignored: page rules)" if rule.get("route") == "page" else ""
        parts.append(f"muted {describe_windows(rule['mute'])}{ignored}")
    return "; ".join(parts)


def _timed(rule: Mapping[str, Any]) -> bool:
    """Whether the zone moves ``rule``'s windows: it has ``active``, or ``mute`` off the page tier."""
    return bool(rule.get("active")) or (bool(rule.get("mute")) and rule.get("route") != "page")


def _flat(rule: Mapping[str, Any]) -> dict[str, Any]:
    flat = {k: v for k, v in rule.items() if k != "when"}
    for k, v in (rule.get("when") or {}).items():
        flat[k] = v
    return flat


def _field_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> tuple[str, ...]:
    a, b = _flat(old), _flat(new)
    defaults: dict[str, Any] = {"continue": False, "ignore_negated": False, "enabled": True, "note": "",
                                "description": ""}
    parts: list[str] = []
    for key in dict.fromkeys([*a, *b]):
        va, vb = a.get(key, defaults.get(key, [])), b.get(key, defaults.get(key, []))
        if va == vb:
            continue
        if key in WINDOW_KEYS:
            before, after = describe_windows(va, WINDOW_KEYS[key]), describe_windows(vb, WINDOW_KEYS[key])
            parts.append(f"{key} {before} → {after}" if before != after else f"{key} rewritten, the same: {after}")
        elif isinstance(va, list) or isinstance(vb, list):
            la, lb = list(va or []), list(vb or [])
            plus = [f'"{t}"' for t in lb if t not in la]
            minus = [f'"{t}"' for t in la if t not in lb]
            text = " ".join(x for x in (f"+[{', '.join(plus)}]" if plus else "",
                                         f"−[{', '.join(minus)}]" if minus else "") if x)
            parts.append(f"{key} {text or 'reordered'}")
        else:
            parts.append(f"{key} {_short(va)} → {_short(vb)}")
    return tuple(parts)


def _short(value: Any) -> str:
    text = str(value)
    return f'"{text[:60]}…"' if len(text) > 60 else (f'"{text}"' if isinstance(value, str) else text)


def _stable(old_ids: list[str], new_ids: list[str]) -> set[str]:
    """Ids of a longest subsequence common ids keep in the same order (the rest "moved")."""
    where = {rid: i for i, rid in enumerate(new_ids)}
    seq = [(where[rid], rid) for rid in old_ids if rid in where]
    tails: list[int] = []
    tail_ids: list[int] = []
    parent: list[int] = [-1] * len(seq)
    for k, (pos, _) in enumerate(seq):
        j = bisect_left(tails, pos)
        if j == len(tails):
            tails.append(pos)
            tail_ids.append(k)
        else:
            tails[j] = pos
            tail_ids[j] = k
        parent[k] = tail_ids[j - 1] if j else -1
    keep: set[str] = set()
    k = tail_ids[-1] if tail_ids else -1
    while k >= 0:
        keep.add(seq[k][1])
        k = parent[k]
    return keep


def diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> RuleDiff:
    """Rule-level differences between two ``routing:`` mappings."""
    old_rules = {r["id"]: r for r in old["rules"]}
    new_rules = {r["id"]: r for r in new["rules"]}
    old_ids, new_ids = list(old_rules), list(new_rules)
    stable = _stable(old_ids, new_ids)
    common = [i for i in new_ids if i in old_rules]
    changed = tuple((i, _field_changes(old_rules[i], new_rules[i])) for i in common if old_rules[i] != new_rules[i])
    queues: list[str] = []
    oq = {q["name"]: q for q in old["queues"]}
    nq = {q["name"]: q for q in new["queues"]}
    queues += [f"+ `{n}` ({nq[n]['route']})" for n in nq if n not in oq]
    queues += [f"- `{n}`" for n in oq if n not in nq]
    queues += [f"~ `{n}`" for n in nq if n in oq and oq[n] != nq[n]]
    zones = (str(old.get("timezone") or "UTC"), str(new.get("timezone") or "UTC"))
    added = tuple(i for i in new_ids if i not in old_rules)
    return RuleDiff(
        added=added,
        removed=tuple(i for i in old_ids if i not in new_rules),
        changed=changed,
        moved=tuple(i for i in common if i not in stable),
        queues=tuple(queues),
        positions=tuple((i, n) for n, i in enumerate(new_ids)),
        timezone=zones if zones[0] != zones[1] else None,
        timed=tuple(i for i in new_ids if _timed(new_rules[i])) if zones[0] != zones[1] else (),
        windows=tuple((i, timing(new_rules[i])) for i in added if timing(new_rules[i])),
    )




def undone_by(base: RulesetVersion | None, live: RulesetVersion, content: dict[str, Any]) -> list[str]:
    """Changes between a draft's ``base`` and ``live`` that publishing the draft (``content``) would revert:
    rules, queues and the timezone, one line each."""
    if base is None:
        return [f"v{live.version} (the draft's base version is gone)"]
    since = diff(base.content, live.content)
    reverted = diff(live.content, content).rule_ids
    rules = len(since.added) + len(since.removed) + len(since.changed) + len(since.moved)
    undone = [line for line, rid in zip(since.lines()[:rules], _rule_ids(since), strict=True) if rid in reverted]
    old_q, live_q, new_q = ({q["name"]: q for q in c.get("queues", [])} for c in (base.content, live.content, content))
    undone += [f"queue `{name}` ({'added' if name not in old_q else 'removed' if name not in live_q else 'changed'} "
               f"in v{live.version})" for name in sorted(set(old_q) | set(live_q))
               if old_q.get(name) != live_q.get(name) and new_q.get(name) == old_q.get(name)]
    zones = [str(c.get("timezone") or "UTC") for c in (base.content, live.content, content)]
    if zones[0] != zones[1] and zones[2] == zones[0]:
        undone.append(f"timezone {zones[1]} (set in v{live.version}) back to {zones[0]}")
    return undone


def _rule_ids(d: Any) -> list[str]:
    """The rule id of each rule line of ``d.lines()``, in order (queue and timezone lines come after)."""
    return [*d.added, *d.removed, *(i for i, _ in d.changed), *d.moved]


__all__ = ["RuleDiff", "describe_windows", "diff", "timing", "undone_by"]
