"""Blind hold-out accuracy of the shipped policy on chat-style messages.

Run from anywhere: ``python bench/chat_holdout.py [--policy PATH] [--data PATH]``.

Reads ``bench/chat_holdout.jsonl`` (one JSON object a line: ``text``, ``label`` in
``msp``/``internal``/``page``, ``note``), written by hand *before* the rules were looked at, and the
``routing:`` section of ``app.yaml``. Classifies every line as a Slack message and prints a confusion
matrix, per-class precision/recall, accuracy, page recall/precision and every misclassified line with
the rule that decided and its explanation. Needs nothing outside the repository.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from routing.engine import compile_ruleset  # noqa: E402
from routing.model import Message  # noqa: E402
from routing.rules import ruleset_from_dict  # noqa: E402

ROUTES = ("page", "internal", "msp")


@dataclass(frozen=True, slots=True)
class Row:
    """One labelled message and what the policy made of it."""

    line: int
    text: str
    label: str
    note: str
    predicted: str
    rule_id: str
    why: str


def load_rows(path: Path) -> list[tuple[int, str, str, str]]:
    """Read the JSONL hold-out: ``(line number, text, label, note)``; rejects unknown labels."""
    out: list[tuple[int, str, str, str]] = []
    for n, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not raw.strip():
            continue
        obj = json.loads(raw)
        if obj["label"] not in ROUTES:
            raise ValueError(f"{path}:{n}: unknown label {obj['label']!r}")
        out.append((n, obj["text"], obj["label"], obj.get("note", "")))
    return out


def ratio(num: int, den: int) -> str:
    """``num/den`` as a percentage with the counts, or ``n/a`` when ``den`` is 0."""
    return f"{100 * num / den:5.1f}% ({num}/{den})" if den else "  n/a"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policy", type=Path, default=REPO / "app.yaml")
    parser.add_argument("--data", type=Path, default=REPO / "bench" / "chat_holdout.jsonl")
    args = parser.parse_args(argv)

    routing = yaml.safe_load(args.policy.read_text(encoding="utf-8"))["routing"]
    classifier = compile_ruleset(ruleset_from_dict(routing, version=1))

    rows: list[Row] = []
    for n, text, label, note in load_rows(args.data):
        d = classifier.classify(Message(text=text, platform="slack"))
        rows.append(Row(n, text, label, note, d.route, d.rule_id, d.why))

    counts = {(a, p): 0 for a in ROUTES for p in ROUTES}
    for r in rows:
        counts[(r.label, r.predicted)] += 1

    print(f"policy: {args.policy}  ({len(routing.get('rules', []))} rules)")
    print(f"data:   {args.data}  ({len(rows)} messages: "
          + ", ".join(f"{k} {sum(r.label == k for r in rows)}" for k in ROUTES) + ")")
    print()
    print("confusion matrix (rows = label, columns = predicted)")
    print(f"{'':>10}" + "".join(f"{p:>10}" for p in ROUTES) + f"{'total':>10}")
    for a in ROUTES:
        print(f"{a:>10}" + "".join(f"{counts[(a, p)]:>10}" for p in ROUTES)
              + f"{sum(counts[(a, p)] for p in ROUTES):>10}")
    print()
    print(f"{'class':>10}  {'precision':<18} {'recall':<18}")
    for k in ROUTES:
        tp = counts[(k, k)]
        pred = sum(counts[(a, k)] for a in ROUTES)
        act = sum(counts[(k, p)] for p in ROUTES)
        print(f"{k:>10}  {ratio(tp, pred):<18} {ratio(tp, act):<18}")
    correct = sum(counts[(k, k)] for k in ROUTES)
    print()
    print(f"accuracy:        {ratio(correct, len(rows))}")
    tp = counts[("page", "page")]
    print(f"page recall:     {ratio(tp, sum(counts[('page', p)] for p in ROUTES))}"
          "   (incidents that would wake the on-call)")
    print(f"page precision:  {ratio(tp, sum(counts[(a, 'page')] for a in ROUTES))}"
          "   (pages that were real incidents)")
    missed = [r for r in rows if r.label != r.predicted]
    print()
    print(f"misclassified: {len(missed)}")
    for r in sorted(missed, key=lambda r: (ROUTES.index(r.label), ROUTES.index(r.predicted), r.line)):
        print(f"- line {r.line}: label={r.label} predicted={r.predicted} rule={r.rule_id}")
        print(f"    text: {r.text}")
        print(f"    note: {r.note}")
        print(f"    why:  {r.why}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
