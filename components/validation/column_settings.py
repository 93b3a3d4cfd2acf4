"""Per-column drift and skew settings as the command line and the pipeline parameters carry them.

`--drift-threshold` takes a number (the default threshold of every feature the schema sets none for) or
`COLUMN=NUMBER` pairs (that column's own threshold), and may be given several times; `--drift-ignore`
takes comma-separated columns. The pipeline carries the pairs as one string, `fare=0.2,year=0.5`, and the
ignored columns as `year,month`, so the compiled spec's parameters stay plain strings a dashboard shows.
"""
import math

from components.errors import StageError


def _threshold(text, flag):
    try:
        value = float(text)
    except ValueError:
        raise StageError(f"{flag} {text!r}: give a number (e.g. 0.1), or COLUMN=NUMBER for one column.") from None
    return check_threshold(value, flag, text)


def check_threshold(value, flag, given=None):
    """`value` when it is a usable drift or skew threshold (finite, 0 or more); else one line naming `flag` (and
    the text `given`, where the value came from one)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise StageError(f"{flag} {given if given is not None else value!r}: a threshold is a number of 0 or more "
                         "(0 turns that check off).")
    return value


def parse_threshold_flags(values, default, flag):
    """(default threshold, {column: threshold}) from the values of a repeated threshold flag."""
    column_thresholds = {}
    for value in values or []:
        for part in [piece.strip() for piece in str(value).split(",") if piece.strip()]:
            column, separator, number = part.partition("=")
            if not separator:
                default = _threshold(part, flag)
                continue
            if not column.strip():
                raise StageError(f"{flag} {part!r}: name the column before '=' (e.g. fare=0.2).")
            threshold = _threshold(number.strip(), f"{flag} {column.strip()}=")
            if threshold == 0:
                raise StageError(f"{flag} {part!r}: to check a column not at all, pass --drift-ignore "
                                 f"{column.strip()}.")
            column_thresholds[column.strip()] = threshold
    return default, column_thresholds


def thresholds_text(column_thresholds):
    """{column: threshold} as the pipeline parameter's text: `fare=0.2,year=0.5`."""
    return ",".join(f"{column}={threshold:g}" for column, threshold in sorted(column_thresholds.items()))


def parse_thresholds_text(text, flag):
    """The pipeline parameter's text back as {column: threshold}."""
    return parse_threshold_flags([text], None, flag)[1] if text else {}


def columns_text(values):
    """Comma-separated column names from one or more flag values, in order, each once."""
    columns = []
    for value in values or []:
        for column in str(value).split(","):
            if column.strip() and column.strip() not in columns:
                columns.append(column.strip())
    return ",".join(columns)


def parse_columns_text(text):
    return [column for column in columns_text([text]).split(",") if column]
