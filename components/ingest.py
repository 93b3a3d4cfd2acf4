"""Ingest (TFX's ExampleGen): CSV files become gzipped TFRecords of `tf.train.Example`, split in two.

The input pattern may hold `{SPAN}` and `{VERSION}` (as in TFX): the latest span, and its latest
version, is taken unless a span is asked for. Column types are inferred over all rows (int, float or
string, as TFX's CsvExampleGen does); missing values ("", NA, N/A, NULL) become absent features. Each
row goes to a split by a hash of its content, so the split is deterministic and needs no shuffle.
"""
import csv
import dataclasses
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

from components import layout, storage
from components.beam_options import pipeline_options
from components.errors import StageError
from components.tf_example import serialize_example

SPAN_TOKEN = "{SPAN}"
VERSION_TOKEN = "{VERSION}"
MISSING_VALUES = frozenset({"", "NA", "N/A", "NULL", "null"})
_COUNTER_NAMESPACE = "ingest"
SERVING_SPLIT = "serving"
_ERRORS_FILE = "_errors"
# Types in widening order: a column takes the widest type any of its values needs.
_TYPE_ORDER = ("missing", "int", "float", "string")
_INT64_MIN, _INT64_MAX = -(2 ** 63), 2 ** 63 - 1
_MAX_FIELD_BYTES = 64 * 1024 * 1024


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
    for part in re.split(r"(\{SPAN\}|\{VERSION\}|\*|\?)", pattern):
        regex += {SPAN_TOKEN: r"(?P<span>\d+)", VERSION_TOKEN: r"(?P<version>\d+)",
                  "*": r"[^/]*", "?": r"[^/]"}.get(part, re.escape(part))
    return re.compile(regex + r"\Z")


def resolve_input(pattern, span=0, flag="--data"):
    """Finds the files to ingest: those of `span`, or of the latest span when `span` is 0.

    `flag` names the setting the pattern came from, for error messages.
    """
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


def parse_split_ratios(text):
    """'train:2,eval:1' -> [('train', 2), ('eval', 1)]; train and eval must be there."""
    splits = []
    for item in text.split(","):
        name, _, ratio = item.strip().partition(":")
        if not re.fullmatch(r"[A-Za-z0-9_]+", name) or not ratio.strip().isdigit() or int(ratio) < 1:
            raise StageError(f"--split-ratios {text!r}: write it as name:weight pairs, "
                             "e.g. 'train:2,eval:1' (positive whole weights).")
        splits.append((name, int(ratio)))
    names = [name for name, _ in splits]
    if len(set(names)) != len(names) or not {layout.TRAIN, layout.EVAL} <= set(names):
        raise StageError(f"--split-ratios {text!r} must name 'train' and 'eval' once each.")
    return splits


def _open_text(path):
    return io.TextIOWrapper(FileSystems.open(path), encoding="utf-8", newline="")


def read_header(path):
    """The column names on the first line of a CSV file."""
    csv.field_size_limit(_MAX_FIELD_BYTES)
    try:
        with _open_text(path) as text:
            header = next(csv.reader(text), None)
    except UnicodeDecodeError:
        raise StageError(f"{path} is not UTF-8 text: re-encode it as UTF-8.") from None
    if not header or not any(name.strip() for name in header):
        raise StageError(f"{path} is empty: a CSV file must start with a header line of column names.")
    names = [name.strip() for name in header]
    if any(not name for name in names):
        raise StageError(f"{path}: the header has an empty column name: name every column.")
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise StageError(f"{path}: the header names {', '.join(duplicates)} more than once.")
    return names


class _ReadRows(beam.DoFn):
    """Yields (path, line number, cells) for each data row; bad rows go to the 'errors' output."""

    def __init__(self, columns):
        self._columns = columns

    def process(self, path):
        csv.field_size_limit(_MAX_FIELD_BYTES)
        line = 1
        try:
            with _open_text(path) as text:
                reader = csv.reader(text)
                next(reader, None)
                for cells in reader:
                    line = reader.line_num
                    if not cells:
                        continue
                    if len(cells) != len(self._columns):
                        yield beam.pvalue.TaggedOutput("errors", (
                            f"{path}, line {line}: {len(cells)} fields where the header has "
                            f"{len(self._columns)}: fix the row or quote fields that hold commas."))
                        continue
                    yield path, line, cells
        except UnicodeDecodeError:
            yield beam.pvalue.TaggedOutput(
                "errors", f"{path}, after line {line}: not UTF-8 text: re-encode the file as UTF-8.")
        except csv.Error as error:
            yield beam.pvalue.TaggedOutput("errors", f"{path}, line {line}: unreadable CSV ({error}).")


def _value_type(text):
    if text in MISSING_VALUES:
        return 0
    try:
        return 1 if _INT64_MIN <= int(text) <= _INT64_MAX else 2
    except ValueError:
        pass
    try:
        float(text)
        return 2
    except ValueError:
        return 3


class _InferColumnTypes(beam.CombineFn):
    """The widest type each column needs, over every row."""

    def __init__(self, width):
        self._width = width

    def create_accumulator(self):
        return [0] * self._width

    def add_input(self, accumulator, row):
        _, _, cells = row
        for i, cell in enumerate(cells):
            if accumulator[i] < 3:
                accumulator[i] = max(accumulator[i], _value_type(cell.strip()))
        return accumulator

    def merge_accumulators(self, accumulators):
        return [max(levels) for levels in zip(*accumulators)]

    def extract_output(self, accumulator):
        return [_TYPE_ORDER[level] for level in accumulator]


def _convert(text, column_type):
    text = text.strip()
    if text in MISSING_VALUES:
        return None
    if column_type == "int":
        return int(text)
    if column_type == "float":
        return float(text)
    return text


class _ReadAndSplit(_ReadRows):
    """Reads a file's rows and yields each as a serialized tf.Example in the output of its split.

    Reading and encoding in one step streams each file: rows are never held back waiting for the
    column types, which arrive as a side input from a first, separate read of the files.
    """

    def __init__(self, columns, splits):
        super().__init__(columns)
        self._counters = {name: Metrics.counter(_COUNTER_NAMESPACE, f"rows_{name}") for name, _ in splits}
        self._bounds, upper = [], 0
        for name, weight in splits:
            upper += weight
            self._bounds.append((upper, name))
        self._total = upper

    def process(self, path, column_types):
        for row in super().process(path):
            if isinstance(row, beam.pvalue.TaggedOutput):
                yield row
                continue
            _, _, cells = row
            values = {column: _convert(cell, column_type)
                      for column, cell, column_type in zip(self._columns, cells, column_types)
                      if column_type != "missing"}
            digest = hashlib.sha256("\x1f".join(cells).encode()).digest()
            bucket = int.from_bytes(digest[:8], "big") % self._total
            split = next(name for upper, name in self._bounds if bucket < upper)
            self._counters[split].inc()
            yield beam.pvalue.TaggedOutput(split, serialize_example(values))


def _write_json(value, path):
    with FileSystems.create(path) as sink:
        sink.write(json.dumps(value).encode())


def _check_headers(files, description):
    headers = {path: read_header(path) for path in files}
    columns = headers[files[0]]
    for path, header in headers.items():
        if header != columns:
            raise StageError(f"{path} has columns {header}, but {files[0]} has {columns}: "
                             f"every file of {description} needs the same header.")
    return columns


def write_examples(files, columns, splits, output_dir, beam_args=""):
    """CSV rows of `files` -> gzipped tf.Examples in one folder per split; returns (row counts, types)."""
    os.makedirs(output_dir, exist_ok=True)
    types_path = os.path.join(output_dir, "column_types.json")
    errors_prefix = os.path.join(output_dir, _ERRORS_FILE)
    pipeline = beam.Pipeline(options=pipeline_options(beam_args))
    file_paths = pipeline | "Files" >> beam.Create(files)
    column_types = (
        file_paths
        | "ReadRowsForTypes" >> beam.ParDo(_ReadRows(columns)).with_outputs("errors", main="rows")
    ).rows | "InferTypes" >> beam.CombineGlobally(_InferColumnTypes(len(columns)))
    column_types | "WriteTypes" >> beam.Map(_write_json, types_path)
    split_names = [name for name, _ in splits]
    examples = file_paths | "ReadAndSplit" >> beam.ParDo(
        _ReadAndSplit(columns, splits), beam.pvalue.AsSingleton(column_types)
    ).with_outputs("errors", *split_names)
    examples.errors | "WriteErrors" >> beam.io.WriteToText(errors_prefix, num_shards=1, shard_name_template="")
    for name in split_names:
        examples[name] | f"Write{name}" >> beam.io.WriteToTFRecord(
            os.path.join(layout.split_dir(output_dir, name), "data_tfrecord"), file_name_suffix=".gz")
    result = pipeline.run()
    result.wait_until_finish()

    with FileSystems.open(errors_prefix) as errors_file:
        errors = errors_file.read().decode().splitlines()
    FileSystems.delete([errors_prefix])
    if errors:
        more = f" (and {len(errors) - 1} more rows)" if len(errors) > 1 else ""
        raise StageError(f"{errors[0]}{more}")
    counters = result.metrics().query(MetricsFilter().with_namespace(_COUNTER_NAMESPACE))["counters"]
    row_counts = {name: 0 for name in split_names}
    for counter in counters:
        row_counts[counter.key.metric.name[len("rows_"):]] += counter.committed
    with FileSystems.open(types_path) as types_file:
        types = json.load(types_file)
    return row_counts, dict(zip(columns, types))


def ingest_examples(data_pattern, output_dir, span=0, split_ratios=layout.DEFAULT_SPLIT_RATIOS, beam_args=""):
    """Runs ingest; returns the metadata of the examples written under `output_dir`."""
    splits = parse_split_ratios(split_ratios)
    resolved = resolve_input(data_pattern or demo_data_pattern(), span)
    columns = _check_headers(resolved.files, "a span")
    row_counts, column_types = write_examples(resolved.files, columns, splits, output_dir, beam_args)
    if not sum(row_counts.values()):
        raise StageError(f"The files matched by --data {data_pattern!r} hold a header but no data rows.")
    return {
        "span": resolved.span,
        "version": resolved.version,
        "split_names": [name for name, _ in splits],
        "row_counts": row_counts,
        "column_types": column_types,
        "files": resolved.files,
    }


def ingest_serving_sample(pattern, output_dir, beam_args=""):
    """A sample of serving requests (CSV) -> the `serving` split of tf.Examples under `output_dir`.

    Column types are inferred from the sample itself, so a type that differs from training shows up
    as skew or an anomaly rather than as a conversion error.
    """
    resolved = resolve_input(pattern, flag="--serving-data")
    columns = _check_headers(resolved.files, "the serving sample")
    row_counts, _ = write_examples(resolved.files, columns, [(SERVING_SPLIT, 1)], output_dir, beam_args)
    if not row_counts[SERVING_SPLIT]:
        raise StageError(f"The serving sample {pattern!r} holds a header but no data rows.")
    return row_counts[SERVING_SPLIT]
