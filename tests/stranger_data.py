"""Data nobody on the project wrote: scikit-learn's bundled tables as CSV spans, with real data's mess.

Each table gets what real exports have: empty cells in a few columns, a categorical column with a rare
category, a free-text column, and a yes/no or named-class label. `write_span` writes span 1 as a newcomer
would lay it out; the second-span variants spoil it the ways data goes wrong in production.
"""
import csv
import os
import random

DATASETS = ("breast_cancer", "wine", "diabetes")
MODULES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "modules")
_WORDS = ("seen", "again", "referred", "follow-up", "urgent", "routine", "clinic", "lab", "north", "south")


def _table(name):
    """(header, rows, label column, numeric columns) of one bundled table, with a categorical and a text column."""
    from sklearn import datasets

    rng = random.Random(7)
    if name == "breast_cancer":
        bunch = datasets.load_breast_cancer(as_frame=True)
        frame = bunch.frame.copy()
        frame["diagnosis"] = ["yes" if target == 0 else "no" for target in frame.pop("target")]
        label = "diagnosis"
    elif name == "wine":
        bunch = datasets.load_wine(as_frame=True)
        frame = bunch.frame.copy()
        frame["cultivar"] = [f"cultivar {'ABC'[target]}" for target in frame.pop("target")]
        label = "cultivar"
    elif name == "diabetes":
        bunch = datasets.load_diabetes(as_frame=True, scaled=False)
        frame = bunch.frame.copy()
        frame["sex"] = ["female" if value == 1 else "male" for value in frame["sex"]]
        frame = frame.rename(columns={"target": "progression"})
        label = "progression"
    else:
        raise ValueError(name)
    numeric = [column for column in frame.columns if column not in (label, "sex")]
    # A categorical column with a rare value, and free text: the mess of a real export.
    frame["site"] = [rng.choice(["north", "south", "east"]) if rng.random() > 0.02 else "island clinic"
                     for _ in range(len(frame))]
    frame["note"] = [" ".join(rng.choice(_WORDS) for _ in range(rng.randint(1, 4))) for _ in range(len(frame))]
    header = list(frame.columns)
    rows = [list(values) for values in frame.itertuples(index=False)]
    # Empty cells: some rows of two numeric columns, and the text column in a third of the rows.
    for column in numeric[1:3] + ["note"]:
        index = header.index(column)
        share = 0.33 if column == "note" else 0.05
        for row in rows:
            if rng.random() < share:
                row[index] = ""
    return header, rows, label, numeric


def write_csv(path, header, rows):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", newline="") as sink:
        writer = csv.writer(sink)
        writer.writerow(header)
        writer.writerows(rows)
    return str(path)


def span_path(root, name, span):
    return os.path.join(root, name, f"span-{span}", "data.csv")


def pattern(root, name):
    return os.path.join(root, name, "span-{SPAN}", "data.csv")


def module_path(name):
    return os.path.join(MODULES, f"{name}_module.py")


def write_span(root, name, span=1):
    """The table as it comes, as span `span`."""
    header, rows, _, _ = _table(name)
    return write_csv(span_path(root, name, span), header, rows)


def write_corrupted_span(root, name, span=2):
    """A numeric column turned to text in 30% of the rows, and a column the model uses dropped."""
    header, rows, _, numeric = _table(name)
    rng = random.Random(11)
    text_column, dropped = header.index(numeric[0]), header.index(numeric[3])
    for row in rows:
        if rng.random() < 0.3:
            row[text_column] = f"n/a ({row[text_column]})"
    header = [column for i, column in enumerate(header) if i != dropped]
    rows = [[value for i, value in enumerate(row) if i != dropped] for row in rows]
    return write_csv(span_path(root, name, span), header, rows)


def write_drifted_span(root, name, span=2):
    """One numeric feature multiplied by 3: the values parse, the schema holds, the distribution moved."""
    header, rows, _, numeric = _table(name)
    index = header.index(numeric[0])
    for row in rows:
        if row[index] != "":
            row[index] = float(row[index]) * 3
    return write_csv(span_path(root, name, span), header, rows)


def write_relabelled_span(root, name, span=2):
    """The labels shuffled across rows: the features are as before, the labels carry no signal."""
    header, rows, label, _ = _table(name)
    index = header.index(label)
    labels = [row[index] for row in rows]
    random.Random(13).shuffle(labels)
    for row, value in zip(rows, labels):
        row[index] = value
    return write_csv(span_path(root, name, span), header, rows)


def label_column(name):
    return _table(name)[2]


def numeric_columns(name):
    return _table(name)[3]
