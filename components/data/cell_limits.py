"""What one cell of input may hold: at most `--max-cell-bytes` bytes, and no NUL byte in text.

Every source ingest reads calls these checks on each value before it becomes a tf.Example feature, and
the failure names the file, the line (or row, or record) and the column. The limit keeps one outsized
value from reaching every later stage: a single 50 MB cell became a 51 MB model and pushed the stages'
peak memory to about 2 GB (docs/safety.md has the numbers). A NUL byte is refused in text because no
text column should hold one, and tools downstream cut text at it or store it in a vocabulary file.

What counts as text: every CSV cell, and the string columns of Parquet, Avro and database rows. Binary
values (Parquet binary, Avro bytes, PostgreSQL bytea, and tf.Example bytes features, which routinely
carry encoded images or serialized tensors) may hold NUL bytes; only their size is limited.

This module imports no Beam, so the command line checks the flag with it before anything runs.
"""
from components.errors import StageError

# A long article or a page of JSON is far below it; a value beyond it is almost always a mistake (a file
# pasted into a cell, a quote that never closes), and every stage after ingest holds it many times over.
DEFAULT_MAX_CELL_BYTES = 1024 * 1024
# The largest limit the flag takes: a tf.Example (a protobuf message) cannot exceed 2 GiB.
MAX_CELL_BYTES_CEILING = 1024 * 1024 * 1024
FLAG = "--max-cell-bytes"


def check_max_cell_bytes(value, flag=FLAG):
    """`value` when it is a usable cell limit; else StageError with one line naming `flag`."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_CELL_BYTES_CEILING:
        raise StageError(f"{flag} {value!r}: give a whole number of bytes from 1 to {MAX_CELL_BYTES_CEILING} "
                         f"(default {DEFAULT_MAX_CELL_BYTES}, 1 MiB).")
    return value


def _text_size(text, limit):
    """The UTF-8 size of `text` when it may exceed `limit` bytes, else its length (a lower bound)."""
    return len(text.encode("utf-8", "surrogatepass")) if len(text) * 4 > limit else len(text)


def cell_problem(value, limit):
    """What is wrong with one cell (str is text, bytes binary), in words, or None when it is fine."""
    if isinstance(value, str):
        size = _text_size(value, limit)
        if size > limit:
            return _too_large(size, limit)
        if "\x00" in value:
            return ("holds a NUL byte (\\x00), which text should never hold: remove it from the data, or store "
                    "the column as binary (Parquet binary, Avro bytes)")
    elif isinstance(value, (bytes, bytearray, memoryview)) and len(value) > limit:
        return _too_large(len(value), limit)
    return None


def _too_large(size, limit):
    return (f"a cell of {size} bytes, over the {limit}-byte limit ({FLAG}): shorten or drop the value, or "
            f"raise {FLAG} if values this large are meant to be there")


def row_problem(values, limit):
    """(column, problem) of the first bad cell of a row {column: value}, or None."""
    for column, value in values.items():
        if isinstance(value, (str, bytes)):
            problem = cell_problem(value, limit)
            if problem:
                return column, problem
    return None


def text_row_problem(columns, cells, limit):
    """(column, problem) of the first bad cell of a row of text cells (a CSV row), or None.

    The row is first looked at as a whole, which is cheap, and only a row that may be bad cell by cell."""
    if not cells or (max(map(len, cells)) * 4 <= limit and "\x00" not in "".join(cells)):
        return None
    for column, cell in zip(columns, cells):
        problem = cell_problem(cell, limit)
        if problem:
            return column, problem
    return None


def example_problem(example, limit):
    """(feature, problem) of the first bytes value over `limit` in a parsed tf.Example, or None. Bytes
    features may be binary (encoded images, serialized tensors), so only their size is checked."""
    for name, feature in example.features.feature.items():
        for value in feature.bytes_list.value:
            if len(value) > limit:
                return name, _too_large(len(value), limit)
    return None


def problem_line(where, column, problem, kind="column"):
    """The one error line: where (file and line, row or record), the column (or feature), and what is wrong."""
    return f"{where}, {kind} {column!r}: {problem}."
