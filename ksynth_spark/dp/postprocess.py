"""Consistency post-processing of the selected noisy counts (spec §3.6), on the driver.

Rounds the noisy counts, adds missing parent combinations and lowers every count to at most
the count of each present subset. Works on packed keys of :mod:`ksynth_spark.combinations`;
the inputs are the survivors of every length (driver-side, at most ``Σ|V_l|`` keys).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from ksynth_spark.combinations import ComboCodec, from_sortable, sortable, subset_positions
from ksynth_spark.numerics import member, round_half_away


def postprocess(codec: ComboCodec, keys: np.ndarray, noisy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Consistency post-processing (spec §3.6).

    Args:
        codec: Packing of combinations.
        keys: Packed keys of ``∪ S[l]`` (distinct).
        noisy: Their noisy counts ``H[c]``.

    Returns:
        ``(keys, counts)`` sorted by key: integer counts ≥ 1, each ≤ the count of every present
        subset.
    """
    keys = np.asarray(keys, dtype=np.int64).reshape(-1, codec.n_words)
    counts = round_half_away(np.asarray(noisy, dtype=np.float64)).astype(np.int64).reshape(-1)
    present = counts > 0
    keys, counts = keys[present], counts[present]
    keys, counts = _add_missing_parents(codec, keys, counts)
    return keys, _normalise(codec, keys, counts)


def _reduce_max(view: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Maximum of ``values`` per distinct entry of 1-D ``view`` (distinct entries ascending)."""
    order = np.argsort(view, kind="stable")
    sorted_view = view[order]
    starts = np.flatnonzero(np.concatenate(([True], sorted_view[1:] != sorted_view[:-1])))
    return sorted_view[starts], np.maximum.reduceat(values[order], starts)


def _subsets(codec: ComboCodec, ids: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Packed ``size``-subsets of every row of ``ids``: ``(owner_row, sortable view)``."""
    positions = subset_positions(ids.shape[1], size)
    subs = ids[:, positions].reshape(-1, size)
    owners = np.repeat(np.arange(ids.shape[0]), positions.shape[0])
    return owners, sortable(codec.pack(subs))


def _proper_subsets(codec: ComboCodec, keys: np.ndarray, smallest: int) -> Iterator[tuple]:
    """Yields ``(rows, owners, subs)`` per combination length and subset size: the packed
    ``subs`` of size ``smallest .. length-1`` of the combinations ``keys[rows]``, ``owners``
    indexing ``rows``."""
    ids, lengths = codec.unpack(keys)
    for length in np.unique(lengths):
        rows = np.flatnonzero(lengths == length)
        block = ids[rows, :length]
        for size in range(smallest, int(length)):
            owners, subs = _subsets(codec, block, size)
            yield rows, owners, subs


def _add_missing_parents(codec: ComboCodec, keys: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Step 2: absent sub-combinations (length ≥ 2) get the max count of their present supersets."""
    order = np.argsort(sortable(keys), kind="stable")
    keys, counts = keys[order], counts[order]
    view = sortable(keys)
    sub_views, sub_counts = [], []
    for rows, owners, subs in _proper_subsets(codec, keys, smallest=2):
        sub_views.append(subs)
        sub_counts.append(counts[rows][owners])
    if not sub_views:
        return keys, counts
    subs, maxima = _reduce_max(np.concatenate(sub_views), np.concatenate(sub_counts))
    missing = ~member(view, subs)[0]
    if not missing.any():
        return keys, counts
    merged = np.concatenate([keys, from_sortable(subs[missing], codec.n_words)])
    merged_counts = np.concatenate([counts, maxima[missing]])
    order = np.argsort(sortable(merged), kind="stable")
    return merged[order], merged_counts[order]


def _normalise(codec: ComboCodec, keys: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Step 3: each count becomes the minimum over itself and its present proper subsets
    (one pass, against the pre-normalisation counts). ``keys`` must be sorted."""
    view = sortable(keys)
    result = counts.copy()
    for rows, owners, subs in _proper_subsets(codec, keys, smallest=1):
        hit, pos = member(view, subs)
        np.minimum.at(result, rows[owners[hit]], counts[pos[hit]])
    return result
