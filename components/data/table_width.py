"""What a wide table will cost, said before it is run: at the command line (the header of local CSV or Parquet
data) and at ingest (every source), from the number of columns.

Three stages spend a time on a table's width that no row count changes (measured on this project's 2-core
machine, docs/safety.md#time-limits):
- statistics: TFDV builds each numeric column's histograms from 5,000 quantile points (statistics asks for 50
  quantile buckets, for the drift measures, and TFDV keeps 100 points a bucket), in Python: about 45 ms a
  column a split in the stage (35 ms of it in TFDV);
- schema and validate: TFDV's check of statistics against a schema (C++) grows with the square of the columns:
  about 0.8 µs a pair of columns, once a split in each stage.
So 10,000 columns in two splits take about 15 minutes of statistics and 3 minutes each of schema and validate.
A table for which one of them would run past its stage's time limit is refused up front, naming the estimate
and the ways out; one that costs more than two minutes in all runs, with a notice saying so.
"""
import csv
import glob
import os

from components.errors import StageError
from components.platform.time_limits import stage_limit

STATISTICS_SECONDS_PER_COLUMN_SPLIT = 0.045
CHECK_SECONDS_PER_COLUMN_PAIR_SPLIT = 8e-7
NOTICE_SECONDS = 120
_HEADER_BYTES = 16 * 1024 * 1024


def width_seconds(columns, splits):
    """{stage: seconds} that `columns` columns in `splits` splits cost statistics, schema and validate before any
    row counts."""
    splits = max(splits, 1)
    check = columns * columns * splits * CHECK_SECONDS_PER_COLUMN_PAIR_SPLIT
    return {"statistics": columns * splits * STATISTICS_SECONDS_PER_COLUMN_SPLIT, "schema": check, "validate": check}


def _minutes(seconds):
    return f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"


def width_notice(columns, splits, stage_timeouts, where):
    """A notice (or None) for a table of `columns` columns and `splits` splits; StageError when statistics, schema
    or validate would run past its limit in `stage_timeouts` (the pipeline parameter's text). `where` names the
    data, e.g. `--data rows.csv`."""
    seconds = width_seconds(columns, splits)
    cost = (f"{where} has {columns:,} columns: at this width statistics will take about "
            f"{_minutes(seconds['statistics'])}, schema about {_minutes(seconds['schema'])} and validate about "
            f"{_minutes(seconds['validate'])} before any row counts ({splits} splits, on a 2-core machine; "
            "docs/safety.md#time-limits), and transform, train and evaluate grow with the columns too, most with "
            "those the module uses")
    for stage, needed in seconds.items():
        limit = stage_limit(stage, stage_timeouts)
        if needed > limit:
            raise StageError(f"{cost}: {stage} would run past its time limit of {limit} s; keep only the columns the "
                             "model needs (a narrower file, or fewer columns in --query), or raise the limit with "
                             f"--stage-timeout {stage}=SECONDS.")
    if sum(seconds.values()) > NOTICE_SECONDS:
        return f"Note: {cost}; keeping only the columns the model needs makes it faster, and Ctrl-C stops the run."
    return None


def split_count(split_ratios, split_column, split_cutoff):
    """How many splits ingest writes for these flags (two for a cutoff; else one per name in the ratios)."""
    if split_column and split_cutoff:
        return 2
    return max(len([part for part in split_ratios.split(",") if part.strip()]), 1)


def local_columns(data_pattern, data_format="", delimiter=","):
    """The number of columns of the first local CSV or Parquet file `data_pattern` matches ({SPAN}, {VERSION}
    and {SPLIT} match anything), or None where that cannot be known without reading the data (a bucket,
    another format, no match, a header that cannot be read)."""
    if not data_pattern or "://" in data_pattern:
        return None
    pattern = data_pattern
    for placeholder in ("{SPAN}", "{VERSION}", "{SPLIT}"):
        pattern = pattern.replace(placeholder, "*")
    files = sorted(path for path in glob.glob(pattern) if os.path.isfile(path))
    if not files:
        return None
    first = files[0]
    kind = data_format or os.path.splitext(first)[1].lstrip(".").lower()
    try:
        if kind == "csv":
            with open(first, newline="", encoding="utf-8", errors="replace") as source:
                header = next(csv.reader([source.readline(_HEADER_BYTES)], delimiter=delimiter), [])
            return len(header) or None
        if kind == "parquet":
            import pyarrow.parquet

            return len(pyarrow.parquet.read_schema(first).names)
    except (OSError, ValueError, csv.Error):
        return None  # ingest reads it and says what is wrong with it
    return None


def check_ingested_width(metadata, stage_timeouts, where):
    """At the end of ingest: prints the notice for the ingested table (ingest's metadata: its columns and
    splits), or raises StageError when it cannot get through statistics, schema and validate in time."""
    notice = width_notice(len(metadata.get("column_types") or {}), len(metadata.get("split_names") or []),
                          stage_timeouts, where)
    if notice:
        print(notice, flush=True)
