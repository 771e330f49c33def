"""Redaction on clean help-desk tickets: false-positive candidates, kinds and throughput.

Run from anywhere: ``python bench/redaction.py [--examples N] [--all]``. Reads
``gl_automatic_ticket_assignment.input_data.csv`` from ``$HANDOFF_SHARED_DATA`` or, by default,
``<repo parent>/shared/data``. Every row that gets a redaction is printed for a human to judge
(the tickets are real: users sometimes typed their password, which is a true positive).
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from routing.redact import redact  # noqa: E402

FILE = "gl_automatic_ticket_assignment.input_data.csv"
PLACEHOLDER = re.compile(r"\[redacted:[a-z-]+\]")


def data_dir() -> Path:
    env = os.environ.get("HANDOFF_SHARED_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data"


def load_texts(path: Path) -> list[str]:
    """Short description, then a newline and the description when it differs (``_x000D_`` removed)."""
    texts = []
    with path.open(encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            short = row["Short description"] or ""
            desc = (row["Description"] or "").replace("_x000D_", "")
            texts.append(short if desc == short else f"{short}\n{desc}")
    return texts


def removed_spans(original: str, redacted: str) -> list[tuple[int, str]]:
    """(offset in ``redacted``, original text) for each placeholder, found by aligning the literal
    text between placeholders with the original (greedy: good enough to eyeball)."""
    parts = PLACEHOLDER.split(redacted)
    marks = [m.start() for m in PLACEHOLDER.finditer(redacted)]
    out, pos = [], len(parts[0])
    for k, lit in enumerate(parts[1:]):
        last = k == len(parts) - 2
        end = len(original) - len(lit) if last else original.find(lit, pos + 1) if lit else pos + 1
        end = max(end, pos)
        out.append((marks[k], original[pos:end]))
        pos = end + len(lit)
    return out


def snippet(original: str, redacted: str, width: int = 60) -> str:
    """Each placeholder with some context, and the original text it replaced."""
    lines = []
    for at, secret in removed_spans(original, redacted):
        context = redacted[max(0, at - width):at + width].replace("\n", " | ")
        lines.append(f"...{context}...\n        removed: {secret[:120]!r}")
    return "\n    ".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--examples", type=int, default=20, help="examples to print")
    parser.add_argument("--all", action="store_true", help="print every flagged row")
    args = parser.parse_args()
    path = data_dir() / FILE
    if not path.exists():
        print(f"data not found: {path} (set HANDOFF_SHARED_DATA)", file=sys.stderr)
        return 2
    texts = load_texts(path)

    started = time.perf_counter()
    results = [redact(t) for t in texts]
    elapsed = time.perf_counter() - started

    flagged = [(i, t, r) for i, (t, r) in enumerate(zip(texts, results)) if r.changed]
    kinds: Counter[str] = Counter()
    for _, _, r in flagged:
        for k in r.kinds:
            kinds[k] += r.text.count(f"[redacted:{k}]")
    total_chars = sum(len(t) for t in texts)
    print(f"rows: {len(texts)}  ({total_chars / 1e6:.2f} M characters)")
    print(f"rows with any redaction (false-positive candidates): {len(flagged)}"
          f"  rate: {len(flagged) / len(texts):.4%}")
    print("placeholders per kind: " + (", ".join(f"{k}={n}" for k, n in kinds.most_common()) or "none"))
    print(f"throughput: {len(texts) / elapsed:,.0f} messages/s, {total_chars / elapsed / 1e6:.1f} M chars/s"
          f" ({elapsed * 1e3:.0f} ms for all rows)")

    big = "\n".join(texts)[:10_000]
    reps = 200
    started = time.perf_counter()
    for _ in range(reps):
        redact(big)
    per = (time.perf_counter() - started) / reps
    print(f"one 10 kB message: {per * 1e3:.3f} ms")

    shown = flagged if args.all else flagged[:args.examples]
    print(f"\n{len(shown)} example redactions (row index, kinds):")
    for i, t, r in shown:
        print(f"- row {i} {r.kinds} x{r.count}\n    {snippet(t, r.text)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
