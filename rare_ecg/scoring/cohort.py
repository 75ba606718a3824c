"""A scoring cohort: a filter over ecg_records, read at pinned table versions.

Filter syntax (``--cohort``): ``all``, or clauses joined by ``;``, each ``key=value``:
- ``source=ptbxl,synthetic``   records of these sources;
- ``from=2010-01-01`` / ``to=2015-12-31``   recorded_at on or after / on or before a date (ISO);
- ``patients=KEY1,KEY2`` or ``patients=@FILE``   patient_keys, listed or one per line in a file;
- ``split=train|validation|test``   the shared split by patient (rare_ecg.train.splits).
Clauses combine with AND; a record without a recorded_at fails any date clause.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
from deltalake import DeltaTable

from rare_ecg.lake.paths import storage_options, table_uri
from rare_ecg.lake.schema import ECG_LABELS, ECG_RECORDS, ECG_SCORES, ECG_WAVEFORMS
from rare_ecg.train.splits import SPLITS, assign_splits

COHORT_KEYS = ("source", "from", "to", "patients", "split")
RECORD_COLUMNS = ("record_id", "source", "patient_key", "recorded_at", "age", "sex", "split_fold")


@dataclass(frozen=True)
class CohortFilter:
    sources: tuple[str, ...] | None = None
    date_from: date | None = None
    date_to: date | None = None  # inclusive
    patients: tuple[str, ...] | None = None
    split: str | None = None

    def canonical(self) -> str:
        """A stable text of the filter (commit metadata, subgroup_metrics.cohort)."""
        parts: dict[str, Any] = {
            "source": ",".join(sorted(self.sources)) if self.sources is not None else None,
            "from": self.date_from.isoformat() if self.date_from else None,
            "to": self.date_to.isoformat() if self.date_to else None,
            "patients": f"{len(self.patients)} keys" if self.patients is not None else None,
            "split": self.split,
        }
        text = ";".join(f"{k}={v}" for k, v in parts.items() if v is not None)
        return text or "all"

    def to_json(self) -> str:
        return json.dumps(
            {
                "source": list(self.sources) if self.sources is not None else None,
                "from": self.date_from.isoformat() if self.date_from else None,
                "to": self.date_to.isoformat() if self.date_to else None,
                "patients": sorted(self.patients) if self.patients is not None else None,
                "split": self.split,
            },
            sort_keys=True,
        )


def _date(key: str, value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"cohort clause {key}={value!r}: not an ISO date (YYYY-MM-DD)") from None


def _list(key: str, value: str) -> tuple[str, ...]:
    items = tuple(v.strip() for v in value.split(",") if v.strip())
    if not items:
        raise ValueError(f"cohort clause {key}= lists nothing")
    return items


def parse_cohort(text: str) -> CohortFilter:
    """The filter of a ``--cohort`` text; ValueError naming the offending clause when malformed."""
    text = text.strip()
    if text in ("", "all"):
        return CohortFilter()
    fields: dict[str, Any] = {}
    seen: set[str] = set()
    for clause in text.split(";"):
        clause = clause.strip()
        if not clause:
            continue
        key, sep, value = clause.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or key not in COHORT_KEYS:
            raise ValueError(
                f"cohort clause {clause!r} is not key=value with a key among {', '.join(COHORT_KEYS)} "
                "(or the whole filter 'all')"
            )
        if key in seen:
            raise ValueError(f"cohort clause {key}= appears twice")
        seen.add(key)
        if key == "source":
            fields["sources"] = _list(key, value)
        elif key == "from":
            fields["date_from"] = _date(key, value)
        elif key == "to":
            fields["date_to"] = _date(key, value)
        elif key == "patients":
            if value.startswith("@"):
                path = Path(value[1:])
                if not path.is_file():
                    raise ValueError(f"cohort clause patients=@{path}: no such file")
                value = ",".join(line.strip() for line in path.read_text().splitlines())
            fields["patients"] = _list(key, value)
        else:
            if value not in SPLITS:
                raise ValueError(f"cohort clause split={value!r} is not one of {', '.join(SPLITS)}")
            fields["split"] = value
    flt = CohortFilter(**fields)
    if flt.date_from and flt.date_to and flt.date_from > flt.date_to:
        raise ValueError(f"cohort date range from={flt.date_from} is after to={flt.date_to}")
    return flt


def table_version(lake: str, table_name: str) -> int | None:
    """The table's current version, or None where the lake has no such table."""
    uri = table_uri(lake, table_name)
    opts = storage_options()
    if not DeltaTable.is_deltatable(uri, storage_options=opts):
        return None
    return int(DeltaTable(uri, storage_options=opts).version())


def pin_versions(lake: str) -> dict[str, int]:
    """The versions a run reads (ecg_records, ecg_waveforms, ecg_labels where present), pinned once."""
    versions: dict[str, int] = {}
    for name in (ECG_RECORDS, ECG_WAVEFORMS, ECG_LABELS):
        v = table_version(lake, name)
        if v is None and name != ECG_LABELS:
            raise ValueError(f"lake {lake} has no {name} table: ingest an archive first")
        if v is not None:
            versions[name] = v
    return versions


def scan(lake: str, table_name: str, version: int | None = None) -> pl.LazyFrame:
    return pl.scan_delta(table_uri(lake, table_name), version=version, storage_options=storage_options())


def cohort_records(lake: str, flt: CohortFilter, versions: dict[str, int]) -> pl.DataFrame:
    """The cohort's ecg_records rows (RECORD_COLUMNS) at the pinned version, sorted by record_id."""
    lf = scan(lake, ECG_RECORDS, versions[ECG_RECORDS]).select(RECORD_COLUMNS)
    if flt.sources is not None:
        lf = lf.filter(pl.col("source").is_in(list(flt.sources)))
    if flt.date_from is not None:
        lf = lf.filter(pl.col("recorded_at") >= datetime.combine(flt.date_from, datetime.min.time()))
    if flt.date_to is not None:
        end = datetime.combine(flt.date_to + timedelta(days=1), datetime.min.time())
        lf = lf.filter(pl.col("recorded_at") < end)
    if flt.patients is not None:
        lf = lf.filter(pl.col("patient_key").is_in(list(flt.patients)))
    df = lf.collect()
    if flt.split is not None:
        df = assign_splits(df).filter(pl.col("split") == flt.split).drop("split")
    return df.sort("record_id")


def already_scored(lake: str, model_name: str, model_version: str) -> pl.DataFrame:
    """record_ids already in ecg_scores for this model version (a re-run scores them never again)."""
    if table_version(lake, ECG_SCORES) is None:
        return pl.DataFrame(schema={"record_id": pl.String})
    return (
        scan(lake, ECG_SCORES)
        .filter((pl.col("model_version") == model_version) & (pl.col("model_name") == model_name))
        .select("record_id")
        .unique()
        .collect()
    )
