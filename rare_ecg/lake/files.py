"""A table's Parquet files as a Ray dataset: what training, fine-tuning and scoring stream from the lake.

Not ``ray.data.read_parquet``. In Ray 2.60 its default (DataSourceV2) reader lists files in a task that
starts FooterReader actors and kills them again, on every execution: every epoch and every validation
pass of a training run paid about 5 s of actor start-up for a few files here, and its listing stage once
asked for a whole CPU (a scoring job on 2 CPUs hung). This is one read task per file with fractional CPUs,
reading a row group at a time (ingest writes one per batch of records; Ray Data joins them into blocks up
to its target block size), with the driver's storage options, which workers on another node need not have
in their environment (benchmarks/README.md).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import partial
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from rare_ecg.lake.identity import Secret
from rare_ecg.lake.paths import filesystem, storage_options


def parquet_files_dataset(uris: list[str], columns: list[str], *, num_cpus: float) -> Any:
    """The ``columns`` of the Parquet files at ``uris`` (from DeltaTable.file_uris) as a streaming Ray
    dataset of Arrow blocks; each execution (each epoch) reads the files again."""
    import ray

    storage = Secret(json.dumps(storage_options() or {}).encode())
    listing = ray.data.from_items([{"path": u} for u in uris], override_num_blocks=max(1, len(uris)))
    return listing.map_batches(
        partial(read_parquet_files, columns=tuple(columns), storage=storage),
        batch_size=1,
        batch_format="pyarrow",
        num_cpus=num_cpus,
    )


def read_parquet_files(batch: pa.Table, *, columns: tuple[str, ...], storage: Secret) -> Iterator[pa.Table]:
    """The Ray Data task: the rows of the files named in ``batch`` (column ``path``), a row group at a
    time."""
    options: dict[str, str] = json.loads(storage.reveal()) or {}
    for uri in batch.column("path").to_pylist():
        fs, path = filesystem(uri, options)
        with fs.open_input_file(path) as handle:
            parquet = pq.ParquetFile(handle)
            for i in range(parquet.num_row_groups):
                yield parquet.read_row_group(i, columns=list(columns))
