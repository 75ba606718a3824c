"""Lake labels -> the (n, L) target matrix of a model's vocabulary."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl


def label_matrix(
    ecg_labels: pl.DataFrame, record_ids: Sequence[str], vocabulary: Sequence[str]
) -> tuple[np.ndarray, np.ndarray]:
    """``ecg_labels`` rows (record_id, label) -> (labelled (n,) bool, y (n, L) uint8) for ``record_ids``.

    A record is labelled when it has at least one mapped label (any code, in the vocabulary or not):
    an unlabelled record is unknown, not negative for everything, and must stay out of the metrics.
    """
    ids = pl.DataFrame({"record_id": list(record_ids)}).with_row_index("row")
    known = ecg_labels.select("record_id", "label").filter(pl.col("label").is_not_null())
    labelled_rows = ids.join(known.select("record_id").unique(), on="record_id", how="semi")["row"].to_numpy()
    labelled = np.zeros(len(ids), dtype=bool)
    labelled[labelled_rows] = True
    col = {label: j for j, label in enumerate(vocabulary)}
    hits = ids.join(known.filter(pl.col("label").is_in(list(vocabulary))), on="record_id").select(
        "row", pl.col("label").replace_strict(col, return_dtype=pl.Int64)
    )
    y = np.zeros((len(ids), len(vocabulary)), dtype=np.uint8)
    y[hits["row"].to_numpy(), hits["label"].to_numpy()] = 1
    return labelled, y
