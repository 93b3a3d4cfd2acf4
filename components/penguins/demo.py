"""Demo data for the living pipeline: the penguins as spans by year, and spans that should be refused.

Span 1, 2 and 3 are the 2007, 2008 and 2009 rows, each in `<dir>/span-<N>/penguins.csv`. For the
living scenario, `write_corrupted_span` writes a span with body mass as text, a new island and the
species missing in half the rows, and `write_shuffled_span` a span whose labels are shuffled;
`write_serving_sample` writes what clients send (no species), for the skew check.
"""
import csv
import os
import random

from components.stage_logic.ingest import demo_data_pattern

SPAN_YEARS = {1: "2007", 2: "2008", 3: "2009"}
FILE_NAME = "penguins.csv"


def demo_pattern(directory):
    """The --data pattern that matches the demo spans under `directory`."""
    return os.path.join(directory, "span-{SPAN}", "*.csv")


def _read_rows():
    with open(demo_data_pattern(), newline="") as source:
        reader = csv.DictReader(source)
        return reader.fieldnames, list(reader)


def _write_span(directory, span, header, rows):
    path = os.path.join(directory, f"span-{span}", FILE_NAME)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", newline="") as sink:
        writer = csv.DictWriter(sink, header)
        writer.writeheader()
        writer.writerows(rows)
    return path


def write_demo_span(directory, span):
    """Writes one of spans 1-3: the rows of its year."""
    header, rows = _read_rows()
    return _write_span(directory, span, header, [r for r in rows if r["year"] == SPAN_YEARS[span]])


def write_demo_spans(directory):
    """Writes spans 1-3 (one per year); returns {span: path}."""
    return {span: write_demo_span(directory, span) for span in SPAN_YEARS}


def write_corrupted_span(directory, span):
    """A span of 2009's rows with body mass written as text, a new island and half the species missing."""
    header, rows = _read_rows()
    rows = [dict(r) for r in rows if r["year"] == SPAN_YEARS[3]]
    for i, row in enumerate(rows):
        if i % 5 == 0:
            row["body_mass_g"] = "heavy"
        if i % 7 == 0:
            row["island"] = "Atlantis"
        if i % 2 == 0:
            row["species"] = ""
    return _write_span(directory, span, header, rows)


def write_shuffled_span(directory, span, seed=0):
    """A span of 2009's rows whose species labels are shuffled: valid data, meaningless labels."""
    header, rows = _read_rows()
    rows = [dict(r) for r in rows if r["year"] == SPAN_YEARS[3]]
    labels = [r["species"] for r in rows]
    random.Random(seed).shuffle(labels)
    for row, label in zip(rows, labels):
        row["species"] = label
    return _write_span(directory, span, header, rows)


def write_serving_sample(directory):
    """A sample of serving requests: every penguin's measurements, without the species (what a client sends)."""
    header, rows = _read_rows()
    header = [column for column in header if column != "species"]
    path = os.path.join(directory, "serving", FILE_NAME)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", newline="") as sink:
        writer = csv.DictWriter(sink, header, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path
