"""A slow, obviously-correct pure-Python reading of spec §1–§2, used as a test oracle.

Written independently of the package (no imports from ksynth_spark), straight from the spec.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from itertools import combinations


def parse(text: str, *, use_columns=(), sensitive_zeros=(), multi_value=None, subject_id=None, record_limit=-1,
          delimiter=","):
    """Returns (headers, records) with records as frozensets of (column, value)."""
    multi_value = {k.strip().lower(): v for k, v in (multi_value or {}).items()}
    rows = list(csv.reader(io.StringIO(text), delimiter=delimiter))
    raw_headers, rows = rows[0], rows[1:]
    if record_limit > 0:
        rows = rows[:record_limit]
    key = [h.strip().lower() for h in raw_headers]
    zeros = {z.strip().lower() for z in sensitive_zeros}
    wanted = {u.strip().lower() for u in use_columns}
    sid = subject_id.strip().lower() if subject_id else None

    def norm(x):
        return x.strip().replace(";", "<semicolon>").replace(":", "<colon>")

    def present(value, column_key):
        return value != "" and not (value == "0" and column_key not in zeros)

    used = [i for i, kk in enumerate(key) if kk != sid and (not wanted or kk in wanted)]
    parsed = []
    for row in rows:
        record = {}
        for i in used:
            name = norm(raw_headers[i])
            if key[i] in multi_value:
                pieces = {norm(p) for p in row[i].split(multi_value[key[i]])}
                record[name] = {p for p in pieces if present(p, key[i])}
            else:
                value = norm(row[i])
                record[name] = value if present(value, key[i]) else None
        parsed.append((row[key.index(sid)].strip().lower() if sid else None, record))
    if sid:
        merged = {}
        for subject, record in parsed:
            target = merged.setdefault(subject, {})
            for name, value in record.items():
                if isinstance(value, set):
                    target[name] = target.get(name, set()) | value
                elif value is not None:
                    if target.get(name) not in (None, value):
                        raise ValueError(f"conflict in {name}")
                    target.setdefault(name, value)
                    if target[name] is None:
                        target[name] = value
        parsed = [(s, merged[s]) for s in sorted(merged)]
    records = []
    for _, record in parsed:
        attrs = set()
        for name, value in record.items():
            if isinstance(value, set):
                attrs |= {(f"{name}_{p}", "1") for p in value}
            elif value is not None:
                attrs.add((name, value))
        records.append(frozenset(attrs))
    return records


def count(records, max_length):
    """Counter of frozenset combinations of length 1..max_length."""
    counts = Counter()
    for record in records:
        items = sorted(record)
        for length in range(1, min(max_length, len(items)) + 1):
            counts.update(frozenset(c) for c in combinations(items, length))
    return counts


def selections(combo) -> str:
    """Canonical selections string of a combination."""
    return ";".join(sorted(f"{c}:{v}" for c, v in combo))


def records_analysis(records, counts, k, max_length):
    """Spec §2.6, unprotected: (unique per length, rare per length)."""
    unique = Counter()
    rare = Counter()
    for record in records:
        items = sorted(record)
        lu = lq = 0
        for length in range(1, min(max_length, len(items)) + 1):
            for c in combinations(items, length):
                n = counts[frozenset(c)]
                if n == 1 and not lu:
                    lu = length
                if n < k and not lq:
                    lq = length
        if lu:
            unique[lu] += 1
        elif lq:
            rare[lq] += 1
    return unique, rare
