"""Routing accuracy of a policy on the labelled help-desk tickets: the figure the default rules answer to.

Run from anywhere::

    python bench/accuracy.py [--policy PATH] [--show-errors N] [--rules] [--check]

The policy is the ``routing:`` section of ``--policy`` (a YAML file with a top-level ``routing:``
key); by default the shipped ``app.yaml`` at the repository root. The labels are ``gl_labels_dev.csv`` (``row,label,rationale``;
``basic`` -> msp, ``internal`` -> internal, ``page`` -> page) over the tickets of
``gl_automatic_ticket_assignment.input_data.csv``, both read from ``$HANDOFF_SHARED_DATA`` or, by
default, ``<repo parent>/shared/data`` (see ``SOURCES.md`` there). A ticket's text is its short
description, then a newline and the description when that differs (``_x000D_`` removed).

Prints the confusion matrix, per-class precision / recall / F1, accuracy, and the targets (page
recall >= 0.95, page precision >= 0.70, accuracy >= 0.80) with PASS/FAIL. It is a measurement:
the exit code is 0 unless ``--check`` is given and a target is missed (1), or the data or policy
cannot be read (2).
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from routing.engine import Classifier, compile_ruleset  # noqa: E402
from routing.model import ROUTES, Message  # noqa: E402
from routing.rules import RuleSetError, ruleset_from_dict  # noqa: E402

TICKETS = "gl_automatic_ticket_assignment.input_data.csv"
LABELS = "gl_labels_dev.csv"
LABEL_ROUTE = {"basic": "msp", "internal": "internal", "page": "page"}

#: (name, value key, threshold): what the default policy must reach on the labelled set.
TARGETS: tuple[tuple[str, str, float], ...] = (
    ("page recall", "page_recall", 0.95),
    ("page precision", "page_precision", 0.70),
    ("accuracy", "accuracy", 0.80),
)


class BenchError(Exception):
    """Input the benchmark cannot work with (missing data, unreadable policy)."""


@dataclass(frozen=True, slots=True)
class Example:
    """One labelled ticket and the decision the policy made for it."""

    row: int
    gold: str
    predicted: str
    rule_id: str
    text: str
    rationale: str


def data_dir() -> Path:
    env = os.environ.get("HANDOFF_SHARED_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data"


def default_policy_path() -> Path:
    """The shipped policy: the ``routing:`` section of ``app.yaml`` at the repository root."""
    return REPO / "app.yaml"


def load_classifier(path: Path) -> Classifier:
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise BenchError(f"cannot read policy {path}: {exc}") from None
    if not isinstance(loaded, dict) or "routing" not in loaded:
        raise BenchError(f"{path} has no top-level `routing:` key")
    try:
        return compile_ruleset(ruleset_from_dict(loaded["routing"]))
    except (RuleSetError, ValueError) as exc:
        raise BenchError(f"policy {path} is invalid: {exc}") from None


def ticket_text(row: dict[str, str]) -> str:
    short = row.get("Short description") or ""
    desc = (row.get("Description") or "").replace("_x000D_", "")
    return short if desc == short else f"{short}\n{desc}"


def load_labelled(directory: Path) -> list[tuple[int, str, str, str]]:
    """``(row, route, text, rationale)`` for every labelled ticket."""
    tickets_path, labels_path = directory / TICKETS, directory / LABELS
    missing = [p for p in (tickets_path, labels_path) if not p.is_file()]
    if missing:
        raise BenchError(
            "labelled data not found: " + ", ".join(str(p) for p in missing)
            + " (set HANDOFF_SHARED_DATA to the folder holding them)"
        )
    with tickets_path.open(encoding="utf-8", newline="") as f:
        texts = [ticket_text(r) for r in csv.DictReader(f)]
    out: list[tuple[int, str, str, str]] = []
    with labels_path.open(encoding="utf-8", newline="") as f:
        for n, rec in enumerate(csv.DictReader(f), start=2):
            try:
                row, route = int(rec["row"]), LABEL_ROUTE[rec["label"].strip()]
            except (KeyError, ValueError, AttributeError):
                raise BenchError(f"{labels_path}:{n}: bad row {rec!r}") from None
            if not 0 <= row < len(texts):
                raise BenchError(f"{labels_path}:{n}: row {row} is outside the {len(texts)} tickets")
            out.append((row, route, texts[row], (rec.get("rationale") or "").strip()))
    return out


def evaluate(classifier: Classifier, labelled: Sequence[tuple[int, str, str, str]]) -> list[Example]:
    examples = []
    for row, gold, text, rationale in labelled:
        decision = classifier.classify(Message(text=text))
        examples.append(Example(row, gold, decision.route, decision.rule_id, text, rationale))
    return examples


def metrics(examples: Sequence[Example]) -> dict[str, Any]:
    """Confusion counts, per-route precision/recall/F1 and accuracy."""
    confusion = Counter((e.gold, e.predicted) for e in examples)
    per_class: dict[str, dict[str, float]] = {}
    for route in ROUTES:
        tp = confusion[(route, route)]
        predicted = sum(confusion[(g, route)] for g in ROUTES)
        actual = sum(confusion[(route, p)] for p in ROUTES)
        precision = tp / predicted if predicted else 0.0
        recall = tp / actual if actual else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[route] = {"precision": precision, "recall": recall, "f1": f1, "support": actual}
    correct = sum(confusion[(r, r)] for r in ROUTES)
    return {
        "confusion": confusion,
        "per_class": per_class,
        "accuracy": correct / len(examples) if examples else 0.0,
        "page_recall": per_class["page"]["recall"],
        "page_precision": per_class["page"]["precision"],
        "n": len(examples),
    }


def report(m: dict[str, Any], policy: Path) -> tuple[list[str], bool]:
    """The printed report and whether every target was met."""
    lines = [f"policy: {policy}", f"labelled tickets: {m['n']}", ""]
    lines.append("confusion matrix (rows = label, columns = predicted)")
    lines.append(f"  {'':>10}" + "".join(f"{r:>10}" for r in ROUTES) + f"{'total':>10}")
    for gold in ROUTES:
        counts = [m["confusion"][(gold, p)] for p in ROUTES]
        lines.append(f"  {gold:>10}" + "".join(f"{c:>10}" for c in counts) + f"{sum(counts):>10}")
    lines += ["", f"  {'route':>10}{'precision':>11}{'recall':>9}{'f1':>8}{'support':>9}"]
    for route in ROUTES:
        c = m["per_class"][route]
        lines.append(f"  {route:>10}{c['precision']:>11.3f}{c['recall']:>9.3f}{c['f1']:>8.3f}{c['support']:>9}")
    lines += ["", f"  accuracy: {m['accuracy']:.3f}", "", "targets"]
    ok = True
    for name, key, threshold in TARGETS:
        passed = m[key] >= threshold
        ok &= passed
        lines.append(f"  {name:<15} {m[key]:.3f}  (>= {threshold:.2f})  {'PASS' if passed else 'FAIL'}")
    return lines, ok


def rule_table(examples: Sequence[Example]) -> list[str]:
    """How many tickets each rule decided and how many of those carried the matching label."""
    decided = Counter(e.rule_id for e in examples)
    right = Counter(e.rule_id for e in examples if e.gold == e.predicted)
    routes = {e.rule_id: e.predicted for e in examples}
    lines = ["", "per rule (tickets decided, of which the label agrees)"]
    for rule_id, n in sorted(decided.items(), key=lambda kv: (-kv[1], kv[0])):
        lines.append(f"  {rule_id:<30} {routes[rule_id]:<9} {n:>5} {right[rule_id]:>5}  ({right[rule_id] / n:.0%})")
    return lines


def error_lines(examples: Sequence[Example], limit: int) -> list[str]:
    """Misclassified tickets, the costliest first: missed pages, false pages, then the rest."""
    def cost(e: Example) -> int:
        return 0 if e.gold == "page" else 1 if e.predicted == "page" else 2

    wrong = sorted((e for e in examples if e.gold != e.predicted), key=lambda e: (cost(e), e.gold, e.predicted, e.row))
    lines = ["", f"misclassified: {len(wrong)} (showing {min(limit, len(wrong))})"]
    for e in wrong[:limit]:
        text = " | ".join(part.strip() for part in e.text.splitlines() if part.strip())
        lines.append(f"  row {e.row:>5}  label {e.gold:<8} -> {e.predicted:<8} by {e.rule_id}")
        lines.append(f"      {text[:200]}")
        if e.rationale:
            lines.append(f"      label note: {e.rationale[:150]}")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Measure a routing policy on the labelled help-desk tickets.")
    parser.add_argument("--policy", type=Path, help="YAML file with a top-level `routing:` key")
    parser.add_argument("--show-errors", type=int, default=0, metavar="N", help="print N misclassified tickets")
    parser.add_argument("--rules", action="store_true", help="print how many tickets each rule decided")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)
    policy = args.policy or default_policy_path()
    try:
        classifier = load_classifier(policy)
        labelled = load_labelled(data_dir())
    except BenchError as exc:
        print(f"accuracy: {exc}", file=sys.stderr)
        return 2
    examples = evaluate(classifier, labelled)
    lines, ok = report(metrics(examples), policy)
    if args.rules:
        lines += rule_table(examples)
    if args.show_errors > 0:
        lines += error_lines(examples, args.show_errors)
    print("\n".join(lines))
    return 1 if args.check and not ok else 0


if __name__ == "__main__":
    sys.exit(main())
