"""Ingest (TFX's ExampleGen): data where it lives becomes gzipped TFRecords of `tf.train.Example`, split.

Sources: CSV, Parquet, Avro and TFRecords of tf.Examples (by `--data-format`, or the pattern's
extension), or a PostgreSQL query (`components/data/postgres.py`). A file pattern may hold `{SPAN}` and
`{VERSION}` (as in TFX): the latest span, and its latest version, is taken unless a span is asked for.
CSV column types are inferred over all rows (int, float or string, as TFX's CsvExampleGen does) and
missing values ("", NA, N/A, NULL) become absent features; CSV fields are separated by `csv_delimiter`
(`,`, `;`, tab or `|`: `components/data/csv_dialect.py`) and a byte-order mark is dropped; Parquet, Avro
and database columns are typed from their schema (`components/data/sources.py` has the mapping);
tf.Examples pass through unchanged. From every source, a cell over `max_cell_bytes` or text holding a NUL
byte is refused with its file, line and column (`components/data/cell_limits.py`).

A CSV input of at most `IN_PROCESS_BYTES` is read in the stage's own process, by the Beam pipeline's own steps
called in turn; a larger one, another source, or --beam-args that choose the runner or the DirectRunner's mode go
to Beam.

Splits (TFX's input_config / output_config):
- hash (default): each row goes to a split by a hash of its content, weighted by `split_ratios`, so
  the split is deterministic and needs no shuffle (CSV rows hash their text; other sources their
  tf.Example, so the same rows from Parquet, Avro, TFRecords or a table split alike);
- given: a `{SPLIT}` in the pattern (`data/{SPLIT}/*.csv`, `data/{SPLIT}.parquet`) keeps the splits the
  files already have; `train` and `eval` must be among them;
- by column: with `split_column` and `split_cutoff`, rows whose value is below the cut-off train and
  the rest evaluate (numbers compare as numbers, strings and ISO dates as text, and a timestamp column
  takes an ISO date or time); with `split_column` alone, rows are hashed by that column's value, so rows
  that share it (one user, one day) share a split.
"""
import csv
import dataclasses
import datetime
import functools
import hashlib
import importlib.resources
import io
import json
import os
import re

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics
from apache_beam.metrics.metric import MetricsFilter

from components.data import cell_limits, csv_columns, csv_dialect, database, layout, postgres, sources
from components.data.layout import parse_split_ratios
from components.data.query_check import short_query
from components.data.tf_example import canonical_bytes, example_values, serialize_example
from components.data.tfrecords import WriteGzippedTFRecords, write_gzipped_tfrecord_file
from components.errors import StageError
from components.platform.beam_options import direct_mode_open, file_sizes, stage_pipeline
from components.platform.beam_workers import BEAM_LINE_PREFIX, megabytes
from components.state.storage import Storage, is_remote

SPAN_TOKEN = "{SPAN}"
VERSION_TOKEN = "{VERSION}"
SPLIT_TOKEN = "{SPLIT}"
_SPLIT_NAME = layout.SPLIT_NAME
MISSING_VALUES = csv_columns.MISSING_VALUES
_COUNTER_NAMESPACE = "ingest"
SERVING_SPLIT = layout.SERVING
_ERRORS_FILE = "_errors"
# Python's csv module stops at a field this long (in characters); a shorter cell over --max-cell-bytes is
# read whole, so its error names its column.
_MAX_FIELD_CHARACTERS = 64 * 1024 * 1024
_FIELD_LIMIT_ERROR = "field larger than field limit"


@dataclasses.dataclass(frozen=True)
class ResolvedInput:
    """The files of one span (and version) of an input pattern."""
    files: list
    span: int
    version: int | None


def demo_data_pattern():
    """The Palmer penguins CSV shipped inside the `palmerpenguins` package."""
    return str(importlib.resources.files("palmerpenguins") / "data" / "penguins.csv")


def _pattern_regex(pattern):
    regex = ""
    for part in re.split(r"(\{SPAN\}|\{VERSION\}|\{SPLIT\}|\*|\?)", pattern):
        regex += {SPAN_TOKEN: r"(?P<span>[0-9]+)", VERSION_TOKEN: r"(?P<version>[0-9]+)",
                  SPLIT_TOKEN: f"(?P<split>{_SPLIT_NAME})", "*": r"[^/]*", "?": r"[^/]"}.get(part, re.escape(part))
    return re.compile(regex + r"\Z")


def resolve_input(pattern, span=0, flag="--data", storage=None):
    """Finds the files to ingest: those of `span`, or of the latest span when `span` is 0.

    `flag` names the setting the pattern came from, for error messages.
    """
    storage = storage or Storage()
    if not pattern:
        raise StageError(f"The data pattern is empty: pass {flag} with a CSV path or pattern.")
    if VERSION_TOKEN in pattern and SPAN_TOKEN not in pattern:
        raise StageError(f"{flag} {pattern!r} has {VERSION_TOKEN} without {SPAN_TOKEN}: "
                         "versions belong to spans, add {SPAN} to the pattern.")
    glob = pattern.replace(SPAN_TOKEN, "*").replace(VERSION_TOKEN, "*")
    storage.check_location(pattern, flag)
    matched = storage.match(glob, flag)
    if not matched:
        raise StageError(f"No file matches {flag} {pattern!r}: check the path"
                         + (", or run 'python pipeline.py run' without --data for the demo data."
                            if flag == "--data" else "."))
    if SPAN_TOKEN not in pattern:
        if span:
            raise StageError(f"--span {span} was given but {flag} {pattern!r} has no {SPAN_TOKEN}.")
        return ResolvedInput(files=matched, span=0, version=None)

    regex = _pattern_regex(pattern)
    by_span = {}
    for path in matched:
        match = regex.match(path)
        if match:
            version = int(match["version"]) if VERSION_TOKEN in pattern else None
            by_span.setdefault(int(match["span"]), {}).setdefault(version, []).append(path)
    if not by_span:
        raise StageError(f"Files match {flag} {pattern!r} but none has a number where {SPAN_TOKEN} is.")
    chosen_span = span or max(by_span)
    if chosen_span not in by_span:
        available = ", ".join(str(s) for s in sorted(by_span))
        raise StageError(f"Span {chosen_span} not found for {flag} {pattern!r}: "
                         f"available spans are {available}.")
    versions = by_span[chosen_span]
    chosen_version = max(versions) if VERSION_TOKEN in pattern else None
    return ResolvedInput(files=versions[chosen_version], span=chosen_span, version=chosen_version)


def _open_text(path):
    """The CSV file's text; "utf-8-sig" drops a byte-order mark, which would otherwise start the first name."""
    return io.TextIOWrapper(csv_columns.open_binary(path), encoding="utf-8-sig", newline="")


def read_header(path, delimiter=csv_dialect.DEFAULT_DELIMITER):
    """The column names on the first line of a CSV file whose fields `delimiter` (one character) separates."""
    csv.field_size_limit(_MAX_FIELD_CHARACTERS)
    try:
        with _open_text(path) as text:
            header = next(csv.reader(text, delimiter=delimiter), None)
    except UnicodeDecodeError:
        raise StageError(f"{path} is not UTF-8 text: re-encode it as UTF-8.") from None
    except csv.Error as error:
        raise StageError(f"{path}, line 1: unreadable CSV header ({error}): the first line must name the "
                         "columns.") from None
    if not header or not any(name.strip() for name in header):
        raise StageError(f"{path} is empty: a CSV file must start with a header line of column names.")
    names = [name.strip() for name in header]
    nul = next((position for position, name in enumerate(names, start=1) if "\x00" in name), None)
    if nul:
        raise StageError(f"{path}, line 1: column {nul}'s name holds a NUL byte (\\x00): remove it from the header.")
    other = csv_dialect.one_column_hint(names, delimiter)
    if other:
        shown = names[0] if len(names[0]) <= 60 else names[0][:57] + "..."
        raise StageError(f"{path}: the header is one column, {shown!r}, holding {csv_dialect.plural(other)} where "
                         f"fields are split at {csv_dialect.plural(delimiter)}: pass {csv_dialect.flag_for(other)}.")
    if any(not name for name in names):
        raise StageError(f"{path}: the header has an empty column name: name every column.")
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise StageError(f"{path}: the header names {', '.join(duplicates)} more than once.")
    return names


class _ReadRows(beam.DoFn):
    """(path, split) -> (split, path, line number, cells) for each data row; bad rows go to 'errors', and so
    do rows with a cell over `max_cell_bytes` or a NUL byte (`components.data.cell_limits`)."""

    def __init__(self, columns, delimiter=csv_dialect.DEFAULT_DELIMITER,
                 max_cell_bytes=cell_limits.DEFAULT_MAX_CELL_BYTES):
        self._columns = columns
        self._delimiter = delimiter
        self._max_cell_bytes = max_cell_bytes

    def process(self, element):
        path, split = element
        field_limit = max(_MAX_FIELD_CHARACTERS, self._max_cell_bytes)
        csv.field_size_limit(field_limit)
        line, reader = 1, None
        try:
            with _open_text(path) as text:
                reader = csv.reader(text, delimiter=self._delimiter)
                next(reader, None)
                for cells in reader:
                    line = reader.line_num
                    if not cells:
                        continue
                    if len(cells) != len(self._columns):
                        yield beam.pvalue.TaggedOutput("errors", (
                            f"{path}, line {line}: {len(cells)} fields where the header has "
                            f"{len(self._columns)}: fix the row or quote fields that hold "
                            f"{csv_dialect.plural(self._delimiter)}."))
                        continue
                    bad_cell = cell_limits.text_row_problem(self._columns, cells, self._max_cell_bytes)
                    if bad_cell:
                        yield beam.pvalue.TaggedOutput("errors", cell_limits.problem_line(
                            f"{path}, line {line}", *bad_cell))
                        continue
                    yield split, path, line, cells
        except UnicodeDecodeError:
            yield beam.pvalue.TaggedOutput(
                "errors", f"{path}, after line {line}: not UTF-8 text: re-encode the file as UTF-8.")
        except csv.Error as error:
            if _FIELD_LIMIT_ERROR in str(error):  # a cell longer than any limit, cut off before its row ended
                yield beam.pvalue.TaggedOutput("errors", (
                    f"{path}, line {reader.line_num if reader else line}: a cell of more than "
                    f"{field_limit} characters, over the {self._max_cell_bytes}-byte limit "
                    f"({cell_limits.FLAG}): shorten or drop the value (an unclosed quote makes one cell of the "
                    "rest of the file)."))
                return
            yield beam.pvalue.TaggedOutput("errors", f"{path}, line {line}: unreadable CSV ({error}).")


class _InferColumnTypes(beam.CombineFn):
    """The widest type each column needs over every file, and the files pyarrow could not read.

    Inputs are one (type levels, files to read row by row) pair per file.
    """

    def __init__(self, width):
        self._width = width

    def create_accumulator(self):
        return [csv_columns.MISSING] * self._width, []

    def add_input(self, accumulator, file_levels):
        return self.merge_accumulators([accumulator, file_levels])

    def merge_accumulators(self, accumulators):
        accumulators = list(accumulators)
        return ([max(levels) for levels in zip(*(levels for levels, _ in accumulators))],
                sorted(path for _, paths in accumulators for path in paths))

    def extract_output(self, accumulator):
        levels, row_path_files = accumulator
        return [csv_columns.TYPE_NAMES[level] for level in levels], row_path_files


class _FileColumnTypes(_ReadRows):
    """(path, split) -> (the widest type level of each column in that file, [path] if read row by row).

    pyarrow reads the file a block at a time; a file it cannot read as Python's csv module does is read
    row by row instead (its errors are reported by the second read, which writes the examples).
    """

    def process(self, element):
        path, _ = element
        try:
            yield self._levels_by_blocks(path), []
        except csv_columns.RowPathNeeded:
            yield self._levels_by_rows(element), [path]

    def _levels_by_blocks(self, path):
        levels, classifier = [csv_columns.MISSING] * len(self._columns), csv_columns.Classifier()
        for block in csv_columns.read_blocks(path, len(self._columns), self._delimiter):
            if csv_columns.has_bad_cell(block, self._max_cell_bytes):
                raise csv_columns.RowPathNeeded(path)  # the row path names the line and column
            for index, column in enumerate(block):
                if levels[index] < csv_columns.STRING:
                    levels[index] = max(levels[index], classifier.column_level(column))
        return levels

    def _levels_by_rows(self, element):
        levels = [csv_columns.MISSING] * len(self._columns)
        for row in super().process(element):
            if isinstance(row, beam.pvalue.TaggedOutput):
                continue
            for index, cell in enumerate(row[-1]):
                if levels[index] < csv_columns.STRING:
                    levels[index] = max(levels[index], csv_columns.cell_level(cell))
        return levels


@dataclasses.dataclass(frozen=True)
class ExampleBlock:
    """Consecutive rows of one file: their serialized tf.Examples and their hash keys."""
    examples: list
    keys: list


class _ReadTypedRows(_ReadRows):
    """Reads a file's rows and yields (split, an ExampleBlock) per block of rows, or per row
    (split, {column: typed value}, its hash key).

    The hash key is the row's text. pyarrow reads the file a block at a time and the examples are built a
    column at a time (`components.data.csv_columns`), unless `by_rows` is set or the types pass could not read
    the file that way: then each row is read and converted on its own, as {column: typed value}.
    Reading and converting in one step streams each file: rows are never held back waiting for the column
    types, which arrive as a side input from a first, separate read of the files.
    """

    def __init__(self, columns, by_rows=False, delimiter=csv_dialect.DEFAULT_DELIMITER,
                 max_cell_bytes=cell_limits.DEFAULT_MAX_CELL_BYTES):
        super().__init__(columns, delimiter, max_cell_bytes)
        self._by_rows = by_rows

    def process(self, element, inferred):
        column_types, row_path_files = inferred
        path, split = element
        levels = [csv_columns.TYPE_NAMES.index(column_type) for column_type in column_types]
        if self._by_rows or path in row_path_files:
            yield from self._rows(element, levels)
            return
        classifier = csv_columns.Classifier()
        order = csv_columns.feature_order(self._columns)
        try:
            for block in csv_columns.read_blocks(path, len(self._columns), self._delimiter):
                values = {column: classifier.column_values(cells, level)
                          for column, cells, level in zip(self._columns, block, levels) if level}
                examples = csv_columns.serialize_columns(values, order, len(block[0]))
                yield split, ExampleBlock(examples, csv_columns.hash_keys(block))
        except csv_columns.RowPathNeeded:
            yield beam.pvalue.TaggedOutput(
                "errors", f"{path} changed while ingest read it: run the pipeline again once it is complete.")

    def _rows(self, element, levels):
        for row in super().process(element):
            if isinstance(row, beam.pvalue.TaggedOutput):
                yield row
                continue
            split, _, _, cells = row
            values = {column: csv_columns.cell_value(cell, level)
                      for column, cell, level in zip(self._columns, cells, levels) if level}
            yield split, values, "\x1f".join(cells).encode()


@dataclasses.dataclass(frozen=True)
class SplitPlan:
    """How rows go to splits: `given` by the files, by `column` (a cut-off or a hash), or by a row hash."""
    names: tuple
    weights: tuple = ()
    given: bool = False
    column: str = ""
    cutoff: str = ""

    @property
    def mode(self):
        if self.given:
            return "given"
        if self.column:
            return "column cutoff" if self.cutoff else "column hash"
        return "hash"


def split_plan(split_ratios=layout.DEFAULT_SPLIT_RATIOS, split_column="", split_cutoff="", given_names=()):
    """The split plan from the settings; `given_names` are the splits a `{SPLIT}` pattern found."""
    if split_cutoff and not split_column:
        raise StageError(f"--split-cutoff {split_cutoff!r} needs --split-column: name the column to cut.")
    if given_names:
        if split_column:
            raise StageError(f"--split-column {split_column!r} and a {SPLIT_TOKEN} pattern both split the data: "
                             "keep one.")
        if not {layout.TRAIN, layout.EVAL} <= set(given_names):
            raise StageError(f"The {SPLIT_TOKEN} pattern found the splits {', '.join(sorted(given_names))}: "
                             f"name the folders or files of two of them '{layout.TRAIN}' and '{layout.EVAL}'.")
        others = sorted(set(given_names) - {layout.TRAIN, layout.EVAL})
        return SplitPlan(names=(layout.TRAIN, layout.EVAL, *others), given=True)
    if split_column and split_cutoff:
        return SplitPlan(names=(layout.TRAIN, layout.EVAL), column=split_column, cutoff=split_cutoff)
    splits = parse_split_ratios(split_ratios)
    return SplitPlan(names=tuple(name for name, _ in splits), weights=tuple(weight for _, weight in splits),
                     column=split_column)


def _cutoff_number(text):
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return sources.timestamp_micros(datetime.datetime.fromisoformat(text))
    except ValueError:
        return None


class _AssignSplit(beam.DoFn):
    """(given split, {column: value}, a serialized tf.Example or an ExampleBlock[, hash key]) -> lists of
    serialized tf.Examples, each tagged with its split.

    The hash split hashes the row's tf.Example, so the same rows from Parquet, Avro, TFRecords or a
    database go to the same splits; CSV rows come with their text as the hash key, as before sources
    other than CSV existed, so a CSV data set keeps the splits it always had.
    """

    def __init__(self, plan):
        self._plan = plan
        self._counters = {name: Metrics.counter(_COUNTER_NAMESPACE, f"rows_{name}") for name in plan.names}
        self._bounds, upper = [], 0
        for name, weight in zip(plan.names, plan.weights):
            upper += weight
            self._bounds.append((upper, name))
        self._total = upper
        self._cutoff_number = _cutoff_number(plan.cutoff) if plan.cutoff else None

    def _bucket(self, key):
        bucket = int.from_bytes(hashlib.sha256(key).digest()[:8], "big") % self._total
        return next(name for upper, name in self._bounds if bucket < upper)

    def _by_cutoff(self, value):
        plan = self._plan
        if isinstance(value, (int, float)):
            if self._cutoff_number is None:
                return None, (f"--split-cutoff {plan.cutoff!r} is not a number, date or time, but --split-column "
                              f"{plan.column!r} holds numbers: give a cut-off of the column's type.")
            return (layout.TRAIN if value < self._cutoff_number else layout.EVAL), None
        cutoff = plan.cutoff.encode() if isinstance(value, bytes) else plan.cutoff
        return (layout.TRAIN if value < cutoff else layout.EVAL), None

    def _assign_block(self, given_split, block):
        """An ExampleBlock's examples, one list per split (a block is never split by a column's values)."""
        if self._plan.given:
            by_split = {given_split: block.examples}
        else:
            by_split = {}
            for example, key in zip(block.examples, block.keys):
                by_split.setdefault(self._bucket(key), []).append(example)
        for split, examples in by_split.items():
            self._counters[split].inc(len(examples))
            yield beam.pvalue.TaggedOutput(split, examples)

    def process(self, element):
        given_split, record, *hash_key = element
        if isinstance(record, ExampleBlock):
            yield from self._assign_block(given_split, record)
            return
        if isinstance(record, bytes):
            serialized, values = record, None
        else:
            serialized, values = serialize_example(record), record
        plan, error = self._plan, None
        if plan.given:
            split = given_split
        elif plan.column:
            value = (values if values is not None else example_values(serialized)).get(plan.column)
            if value is None:
                split, error = None, (f"A row has no value in --split-column {plan.column!r}: fill it in every "
                                      "row, or split by another column.")
            elif plan.cutoff:
                split, error = self._by_cutoff(value)
            else:
                split = self._bucket(serialize_example({plan.column: value}))
        else:
            key = hash_key[0] if hash_key else serialized if values is not None else canonical_bytes(serialized)
            split = self._bucket(key)
        if error:
            yield beam.pvalue.TaggedOutput("errors", error)
            return
        self._counters[split].inc()
        yield beam.pvalue.TaggedOutput(split, [serialized])


def _write_json(value, path):
    with FileSystems.create(path) as sink:
        sink.write(json.dumps(value).encode())


def header_difference(path, header, first_path, first_header):
    """Where `header` (of `path`) first differs from `first_header` (of `first_path`), in words; None if nowhere."""
    for position, (first_name, name) in enumerate(zip(first_header, header), start=1):
        if name != first_name:
            moved = " (the same columns in another order)" if sorted(header) == sorted(first_header) else ""
            return f"{path}: column {position} is {name!r} where {first_path} has {first_name!r}{moved}"
    if len(header) > len(first_header):
        return (f"{path}: column {len(first_header) + 1} is {header[len(first_header)]!r}, after the last column "
                f"of {first_path} ({len(first_header)} columns)")
    if len(header) < len(first_header):
        return (f"{path}: column {len(header) + 1} is missing ({len(header)} columns) where {first_path} has "
                f"{first_header[len(header)]!r}")
    return None


def _check_headers(files, description, delimiter=csv_dialect.DEFAULT_DELIMITER):
    headers = {path: read_header(path, delimiter) for path in files}
    columns = headers[files[0]]
    for path, header in headers.items():
        difference = header_difference(path, header, files[0], columns)
        if difference:
            raise StageError(f"{difference}: every file of {description} needs the same header.")
    return columns


def _check_split_column(plan, columns):
    if plan.column and columns is not None and plan.column not in columns:
        raise StageError(f"--split-column {plan.column!r} is not a column of the data: choose one of "
                         f"{', '.join(columns)}.")


class _FileSource:
    """Files of one format, each with the split it belongs to (None unless the splits are given)."""

    def __init__(self, file_splits, file_format, description, delimiter=csv_dialect.DEFAULT_DELIMITER,
                 max_cell_bytes=cell_limits.DEFAULT_MAX_CELL_BYTES):
        self.file_splits = file_splits
        self.format = file_format
        self.description = description
        self.delimiter = delimiter  # CSV only: the one character between fields
        self.max_cell_bytes = max_cell_bytes
        files = list(file_splits)
        self.columns, self.row_groups = None, None
        if file_format == sources.CSV:
            self.columns = _check_headers(files, description, delimiter)
        elif file_format == sources.PARQUET:
            self.column_types, self.row_groups = sources.parquet_columns(files)
            self.columns = list(self.column_types)
        elif file_format == sources.AVRO:
            self.column_types = sources.avro_columns(files)
            self.columns = list(self.column_types)

    def read(self, pipeline, plan):
        """(records, errors, a PCollection of {column: type}); see `_AssignSplit` for the records' forms.

        Each file (Parquet: each row group) is one element, reshuffled so that a distributed runner reads
        them on different workers instead of fusing them into the step that created them.
        """
        if self.format == sources.CSV:
            # A split by a column's value compares the row's own values, so those rows are read one by one.
            return self._read_csv(pipeline, by_rows=bool(plan.column))
        return {sources.PARQUET: self._read_parquet, sources.AVRO: self._read_avro,
                sources.TFRECORD: self._read_tfrecord}[self.format](pipeline)

    def piece_sizes(self):
        """[the bytes of each piece that Beam reads apart: a file (Parquet: a row group)], or None if not known."""
        sizes = file_sizes(list(self.file_splits))
        if sizes is None or any(len(found) != 1 for found in sizes):  # a file named like a pattern (`[`, `*`)
            return None
        groups = ({path: sum(1 for file, _ in self.row_groups if file == path) for path in self.file_splits}
                  if self.format == sources.PARQUET else dict.fromkeys(self.file_splits, 1))
        return [[found[0] / max(groups[path], 1) for path, found in zip(self.file_splits, sizes)
                 for _ in range(max(groups[path], 1))]]

    def _files(self, pipeline):
        """(path, given split) for each file, one element each."""
        return pipeline | "Files" >> beam.Create(list(self.file_splits.items())) | "Spread" >> beam.Reshuffle()

    def _read_csv(self, pipeline, by_rows):
        files = self._files(pipeline)
        columns = self.columns
        inferred = (files | "ReadFilesForTypes" >> beam.ParDo(
            _FileColumnTypes(columns, self.delimiter, self.max_cell_bytes))
            | "InferTypes" >> beam.CombineGlobally(_InferColumnTypes(len(columns))))
        records = files | "ReadRows" >> beam.ParDo(
            _ReadTypedRows(columns, by_rows, self.delimiter, self.max_cell_bytes), beam.pvalue.AsSingleton(inferred)
        ).with_outputs("errors", main="records")
        named_types = inferred | "NameTypes" >> beam.Map(lambda types_and_files: dict(zip(columns, types_and_files[0])))
        return records.records, records.errors, named_types

    def _read_parquet(self, pipeline):
        groups = [(path, group, self.file_splits[path]) for path, group in self.row_groups]
        records = (pipeline | "RowGroups" >> beam.Create(groups) | "Spread" >> beam.Reshuffle()
                   | "ReadParquet" >> beam.ParDo(sources.ReadParquetRowGroups(self.max_cell_bytes)).with_outputs(
                       "errors", main="records"))
        return records.records, records.errors, pipeline | "Types" >> beam.Create([self.column_types])

    def _read_avro(self, pipeline):
        records = self._files(pipeline) | "ReadAvro" >> beam.ParDo(
            sources.ReadAvroFiles(self.max_cell_bytes)).with_outputs("errors", main="records")
        return records.records, records.errors, pipeline | "Types" >> beam.Create([self.column_types])

    def _read_tfrecord(self, pipeline):
        records = self._files(pipeline) | "ReadTFRecord" >> beam.ParDo(
            sources.ReadTFRecordFiles(self.max_cell_bytes)).with_outputs("errors", main="records")
        column_types = (records.records
                        | "FeatureTypes" >> beam.Map(lambda record: sources.example_feature_types(record[1]))
                        | "InferTypes" >> beam.CombineGlobally(sources.InferExampleTypes()))
        return records.records, records.errors, column_types


class _CheckRowCells(beam.DoFn):
    """(split, {column: value}) rows of a source that does not check its own cells (a database query) ->
    the same rows; a row with a cell over `max_cell_bytes` or a NUL byte in text goes to 'errors' instead."""

    def __init__(self, description, max_cell_bytes, key_column=""):
        self._description = description
        self._max_cell_bytes = max_cell_bytes
        self._key_column = key_column  # a column that tells the rows apart, named in the error

    def process(self, row):
        bad_cell = cell_limits.row_problem(row[1], self._max_cell_bytes)
        if not bad_cell:
            yield row
            return
        key = row[1].get(self._key_column) if self._key_column else None
        where = self._description + (f", the row where {self._key_column} = {key!r}" if key is not None else "")
        yield beam.pvalue.TaggedOutput("errors", cell_limits.problem_line(where, *bad_cell))


class _QuerySource:
    """A PostgreSQL query, read in the partitions `components.data.postgres.describe_query` found."""

    def __init__(self, query, partition_column, partitions, max_cell_bytes=cell_limits.DEFAULT_MAX_CELL_BYTES,
                 settings=None):
        self.query_source = postgres.describe_query(query, partition_column, partitions,
                                                    settings or postgres.QuerySettings())
        self.partition_column = partition_column
        self.columns = list(self.query_source.column_types)
        self.description = f"the query {query!r}"
        self.cell_check = _CheckRowCells(f"--query {short_query(query)!r}", max_cell_bytes, partition_column)

    def piece_sizes(self):
        """None: a query's size is not known before it runs."""
        return None

    def read(self, pipeline, plan):
        del plan  # rows from a database are split by the example's own values
        records = (pipeline | "Partitions" >> beam.Create(self.query_source.partitions)
                   | "Spread" >> beam.Reshuffle()
                   | "ReadQuery" >> beam.ParDo(postgres.ReadQueryPartitions(
                       self.query_source, self.partition_column)).with_outputs("errors", main="records"))
        # The cells are checked here, apart from the reader (components/data/postgres.py), which yields rows
        # as {column: value} like the file readers; a new non-file source can take the same step.
        checked = records.records | "CheckCells" >> beam.ParDo(self.cell_check).with_outputs("errors", main="records")
        errors = (records.errors, checked.errors) | "QueryErrors" >> beam.Flatten()
        return checked.records, errors, pipeline | "Types" >> beam.Create([self.query_source.column_types])


# A CSV input of at most this many bytes (all its files together) is ingested in the stage's own process, where
# --beam-args leave the DirectRunner's mode open: the Beam pipeline's own steps (`_FileColumnTypes`,
# `_InferColumnTypes`, `_ReadTypedRows`, `_AssignSplit`), called in turn, write the same files (for one file, the
# same bytes: tests/test_ingest_in_process.py). A Beam pipeline costs about 0.6 s on a few hundred rows; the
# steps alone take a few hundredths of a second.
IN_PROCESS_BYTES = 1 << 20


def write_examples(source, plan, output_dir, beam_args=""):
    """The rows of `source` -> gzipped tf.Examples in one folder per split; returns (row counts, types)."""
    _check_split_column(plan, source.columns)
    if not is_remote(output_dir):  # a bucket URI when Beam's workers run elsewhere
        os.makedirs(output_dir, exist_ok=True)
    types_path = os.path.join(output_dir, "column_types.json")
    piece_sizes = functools.cache(source.piece_sizes)  # the files are listed once, whichever path asks
    size = _in_process_size(source, beam_args, piece_sizes)
    if size is None:
        row_counts, errors = _write_with_beam(source, plan, output_dir, beam_args, types_path, piece_sizes)
    else:
        print(f"{BEAM_LINE_PREFIX}none (CSV input {megabytes(size)}, at most {IN_PROCESS_BYTES >> 20} MiB: read in "
              "this process)", flush=True)
        row_counts, errors = _write_in_process(source, plan, output_dir, types_path)
    if errors:
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise StageError(f"{errors[0]}{more}")
    with FileSystems.open(types_path) as types_file:
        types = json.load(types_file)
    mixed = sorted(name for name, kind in types.items() if "/" in kind)
    if mixed:
        kinds = types[mixed[0]].split("/")
        raise StageError(f"Feature {mixed[0]!r} of {source.description} is {kinds[0]} in some examples and "
                         f"{kinds[1]} in others: give it one type in every example.")
    return row_counts, types


def _in_process_size(source, beam_args, piece_sizes):
    """The bytes of a CSV source to ingest in this process, or None where Beam runs the pipeline (another source,
    a larger input, a size not known, Beam arguments that choose the runner or the DirectRunner's mode)."""
    if not isinstance(source, _FileSource) or source.format != sources.CSV or not direct_mode_open(beam_args):
        return None
    sizes = piece_sizes()
    if sizes is None or sum(sizes[0]) > IN_PROCESS_BYTES:
        return None
    return sum(sizes[0])


def _write_with_beam(source, plan, output_dir, beam_args, types_path, piece_sizes):
    """Runs the Beam pipeline; returns (row counts, error lines)."""
    errors_prefix = os.path.join(output_dir, _ERRORS_FILE)
    with stage_pipeline(beam_args, "ingest", piece_sizes) as pipeline:
        records, read_errors, column_types = source.read(pipeline, plan)
        column_types | "WriteTypes" >> beam.Map(_write_json, types_path)
        examples = records | "AssignSplit" >> beam.ParDo(_AssignSplit(plan)).with_outputs("errors", *plan.names)
        ((read_errors, examples.errors) | "Errors" >> beam.Flatten()
         # No file when there is no error: an object store refuses to complete an empty multipart upload.
         | "WriteErrors" >> beam.io.WriteToText(errors_prefix, num_shards=1, shard_name_template="",
                                                skip_if_empty=True))
        for name in plan.names:
            examples[name] | f"Write{name}" >> WriteGzippedTFRecords(
                os.path.join(layout.split_dir(output_dir, name), "data_tfrecord"))
    result = pipeline.result

    errors = []
    if FileSystems.exists(errors_prefix):
        with FileSystems.open(errors_prefix) as errors_file:
            errors = errors_file.read().decode().splitlines()
        FileSystems.delete([errors_prefix])
    counters = result.metrics().query(MetricsFilter().with_namespace(_COUNTER_NAMESPACE))["counters"]
    row_counts = {name: 0 for name in plan.names}
    for counter in counters:
        row_counts[counter.key.metric.name[len("rows_"):]] += counter.committed
    return row_counts, errors


def _write_in_process(source, plan, output_dir, types_path):
    """The Beam pipeline's steps for a CSV source, called in turn; returns (row counts, error lines). The files
    are read in order, so the rows of several files keep that order (Beam's pipeline spreads the files first)."""
    columns, files = source.columns, list(source.file_splits.items())
    column_types = _FileColumnTypes(columns, source.delimiter, source.max_cell_bytes)
    combine = _InferColumnTypes(len(columns))
    accumulator = combine.create_accumulator()
    for file_levels in (levels for element in files for levels in column_types.process(element)):
        accumulator = combine.add_input(accumulator, file_levels)
    inferred = combine.extract_output(accumulator)
    _write_json(dict(zip(columns, inferred[0])), types_path)

    reader = _ReadTypedRows(columns, bool(plan.column), source.delimiter, source.max_cell_bytes)
    assign = _AssignSplit(plan)
    examples, errors = {name: [] for name in plan.names}, []
    for record in (record for element in files for record in reader.process(element, inferred)):
        for output in [record] if isinstance(record, beam.pvalue.TaggedOutput) else assign.process(record):
            (errors if output.tag == "errors" else examples[output.tag]).append(output.value)
    if not errors:
        for name, record_lists in examples.items():
            write_gzipped_tfrecord_file(os.path.join(layout.split_dir(output_dir, name), "data_tfrecord"),
                                        record_lists)
    return {name: sum(len(records) for records in record_lists) for name, record_lists in examples.items()}, errors


def _given_splits(pattern, files):
    """{file: split} from the `{SPLIT}` part of the pattern."""
    regex = _pattern_regex(pattern)
    file_splits = {}
    for path in files:
        match = regex.match(path)
        if not match:
            raise StageError(f"{path} matches --data {pattern!r} but its {SPLIT_TOKEN} part is not a split name "
                             "(letters, digits and _): rename the folder or file.")
        file_splits[path] = match["split"]
    return file_splits


# The fewest eval examples evaluation can mean anything on: R² needs labels that vary, and a metric of a
# handful of examples moves by a tenth or more with each one. A split below it is refused at ingest.
MIN_EVAL_EXAMPLES = 10


def _check_split_sizes(row_counts, plan, split_ratios, split_column, split_cutoff, min_eval_examples):
    """Every split needs rows, and the eval split at least `min_eval_examples`: else one line naming the
    split, its count, the minimum and what to do."""
    minimum = {name: (min_eval_examples if name == layout.EVAL else 1) for name in plan.names}
    short = [name for name in plan.names if row_counts[name] < minimum[name]]
    if not short:
        return
    name = next((split for split in short if not row_counts[split]), short[0])
    counts = ", ".join(f"{split} {row_counts[split]}" for split in plan.names)
    if plan.mode == "given":
        how, remedy = f"the {SPLIT_TOKEN} pattern", "add rows to its files"
    elif plan.cutoff:
        how, remedy = f"--split-cutoff {split_cutoff!r} on --split-column {split_column!r}", "move the cut-off"
    else:
        how = f"--split-ratios {split_ratios!r}" + (f" on --split-column {split_column!r}" if split_column else "")
        remedy = ("add rows (a hash split needs a few dozen at least) or give it a larger share with --split-ratios "
                  "(e.g. train:1,eval:1)")
    total = sum(row_counts.values())
    if not row_counts[name]:
        raise StageError(f"The {name} split has no rows: {total} rows split with {how} gave {counts}; every split "
                         f"needs rows: {remedy}.")
    examples = "example" if row_counts[name] == 1 else "examples"
    raise StageError(f"The {name} split has {row_counts[name]} {examples}, too few to evaluate a model on (at "
                     f"least {minimum[name]}): {total} rows split with {how} gave {counts}: {remedy}.")


def ingest_examples(data_pattern, output_dir, span=0, split_ratios=layout.DEFAULT_SPLIT_RATIOS, beam_args="",
                    data_format="", query="", query_partition_column="",
                    query_partitions=database.DEFAULT_QUERY_PARTITIONS, split_column="",
                    split_cutoff="", storage=None, csv_delimiter=csv_dialect.DEFAULT_DELIMITER,
                    min_eval_examples=MIN_EVAL_EXAMPLES, max_cell_bytes=cell_limits.DEFAULT_MAX_CELL_BYTES,
                    query_timeout=database.DEFAULT_QUERY_TIMEOUT_SECONDS, allow_privileged_role=False):
    """Runs ingest; returns the metadata of the examples written under `output_dir`.

    The source is the files matched by `data_pattern` (the demo data when it and `query` are empty), in
    `data_format` or the one their extension says, or the rows of the PostgreSQL `query`. CSV files'
    fields are separated by `csv_delimiter` (`,`, `;`, `|` or a tab, by any name `csv_dialect` accepts).
    Every split needs rows, and the eval split at least `min_eval_examples` (the pipeline's ingest stage
    keeps MIN_EVAL_EXAMPLES; a test of the readers alone may take fewer). A cell over `max_cell_bytes`, or a
    NUL byte in text, is refused with one line naming its file, line and column (`components.data.cell_limits`).
    The query's sessions end any statement after `query_timeout` seconds, and refuse a role that can do more
    than read unless `allow_privileged_role` (`components.data.postgres.QuerySettings`).
    """
    storage = storage or Storage()
    delimiter = csv_dialect.delimiter(csv_delimiter)
    cell_limits.check_max_cell_bytes(max_cell_bytes)
    if query:
        if data_pattern:
            raise StageError("--data and --query are both given: ingest reads one source, leave one out.")
        if span:
            raise StageError(f"--span {span} applies to --data patterns with {SPAN_TOKEN}, not to --query.")
        plan = split_plan(split_ratios, split_column, split_cutoff)
        source = _QuerySource(query, query_partition_column, query_partitions, max_cell_bytes,
                              postgres.QuerySettings(query_timeout, allow_privileged_role))
        provenance = {"span": 0, "version": None, "source": "postgresql", "query": query,
                      "query_partitions": len(source.query_source.partitions)}
    else:
        if query_partition_column:
            raise StageError("--query-partition-column is given without --query: it partitions a query.")
        pattern = data_pattern or demo_data_pattern()
        resolved = resolve_input(pattern.replace(SPLIT_TOKEN, "*"), span, storage=storage)
        given = SPLIT_TOKEN in pattern
        file_splits = _given_splits(pattern, resolved.files) if given else dict.fromkeys(resolved.files)
        given_names = sorted(set(file_splits.values())) if given else ()
        plan = split_plan(split_ratios, split_column, split_cutoff, given_names)
        file_format = sources.data_format(pattern, data_format)
        source = _FileSource(file_splits, file_format, "a span", delimiter, max_cell_bytes)
        provenance = {"span": resolved.span, "version": resolved.version, "source": file_format,
                      "files": resolved.files}
    row_counts, column_types = write_examples(source, plan, output_dir, beam_args)
    if not sum(row_counts.values()):
        raise StageError(f"--query {query!r} returns no rows." if query else
                         f"The files matched by --data {data_pattern!r} hold "
                         f"{'a header but ' if source.format == sources.CSV else ''}no data rows.")
    _check_split_sizes(row_counts, plan, split_ratios, split_column, split_cutoff, min_eval_examples)
    return {
        **provenance,
        "split_mode": plan.mode,
        "split_names": list(plan.names),
        "row_counts": row_counts,
        "column_types": column_types,
    }


def ingest_serving_sample(pattern, output_dir, beam_args="", storage=None, csv_delimiter=csv_dialect.DEFAULT_DELIMITER,
                          max_cell_bytes=cell_limits.DEFAULT_MAX_CELL_BYTES):
    """A sample of serving requests (CSV, its fields separated by `csv_delimiter`) -> the `serving` split of
    tf.Examples under `output_dir`; its cells are limited as ingest's are (`max_cell_bytes`, no NUL bytes).

    Column types are inferred from the sample itself, so a type that differs from training shows up
    as skew or an anomaly rather than as a conversion error.
    """
    storage = storage or Storage()
    cell_limits.check_max_cell_bytes(max_cell_bytes)
    resolved = resolve_input(pattern, flag="--serving-data", storage=storage)
    source = _FileSource(dict.fromkeys(resolved.files), sources.CSV, "the serving sample",
                         csv_dialect.delimiter(csv_delimiter), max_cell_bytes)
    row_counts, _ = write_examples(source, SplitPlan(names=(SERVING_SPLIT,), weights=(1,)), output_dir, beam_args)
    if not row_counts[SERVING_SPLIT]:
        raise StageError(f"The serving sample {pattern!r} holds a header but no data rows.")
    return row_counts[SERVING_SPLIT]
