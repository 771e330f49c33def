"""Secret redaction, measured: detection on the planted corpus, false positives on clean tickets.

Run from anywhere: ``python bench/secret_detection.py [--show N]``. Prints

* the detection rate of :func:`routing.redact.redact` on :func:`tests.secret_corpus.corpus` (fake
  credentials in help-desk phrasing), per family and per kind: *hidden* (no planted value left in
  the text) and *named* (the placeholder says the right kind);
* the rows of the clean ticket sets in ``../shared/data`` (``$HANDOFF_SHARED_DATA``) that get any
  redaction: each one is a false positive unless a person really typed a credential there (the
  first ``--show`` are printed to judge).
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.redaction import FILE, data_dir, load_texts, snippet
from routing.redact import KINDS, redact
from tests.secret_corpus import corpus, families

ENDAVA = "endava_all_tickets.head4855_tail576.csv"


def detection() -> None:
    items = corpus()
    print(f"planted corpus: {len(items)} fake credentials in {len(families(items))} families")
    total: Counter[str] = Counter()
    hidden: Counter[str] = Counter()
    named: Counter[str] = Counter()
    for family, group in families(items).items():
        h = n = 0
        for p in group:
            r = redact(p.message)
            ok = not any(x in r.text for x in p.needles)
            h, n = h + ok, n + (p.kind in r.kinds)
            total[p.kind] += 1
            hidden[p.kind] += ok
            named[p.kind] += p.kind in r.kinds
        print(f"  {family:22} {len(group):4}  hidden {h / len(group):7.1%}  named {n / len(group):7.1%}")
    print("per kind:")
    for kind in KINDS:
        print(f"  {kind:22} {total[kind]:4}  hidden {hidden[kind] / total[kind]:7.1%}  "
              f"named {named[kind] / total[kind]:7.1%}")
    print(f"  {'all':22} {len(items):4}  hidden {sum(hidden.values()) / len(items):7.1%}  "
          f"named {sum(named.values()) / len(items):7.1%}")


def endava_texts(path: Path) -> list[str]:
    with path.open(encoding="utf-8", newline="") as f:
        return [f"{row['title']}\n{row['body']}" for row in csv.DictReader(f)]


def false_positives(show: int) -> None:
    folder = data_dir()
    sets = [(FILE, load_texts), (ENDAVA, endava_texts)]
    for name, load in sets:
        path = folder / name
        if not path.exists():
            print(f"{name}: not found in {folder} (set HANDOFF_SHARED_DATA)")
            continue
        texts = load(path)
        flagged = [(i, t, r) for i, t in enumerate(texts) if (r := redact(t)).changed]
        kinds: Counter[str] = Counter(k for _, _, r in flagged for k in r.kinds)
        print(f"{name}: {len(texts)} clean rows, {len(flagged)} with a redaction "
              f"({len(flagged) / len(texts):.3%}); kinds: {dict(kinds) or 'none'}")
        for i, t, r in flagged[:show]:
            print(f"  - row {i}: {snippet(t, r.text)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--show", type=int, default=0, help="flagged clean rows to print per data set")
    args = parser.parse_args()
    detection()
    print()
    false_positives(args.show)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
