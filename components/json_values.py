"""JSON the project writes: valid JSON only, so every file and metadata field parses with any strict reader.

Python's `json` writes NaN and Infinity as bare words, which are not JSON (a browser's `JSON.parse`, Go,
jq and KFP's protobuf Struct all refuse them: KFP fails the stage with "Fail to serialize NaN"). Every
JSON the project writes goes through `dumps`, `dump` or `write`, which refuse such a value
(`allow_nan=False`), so a regression fails where the value is written, not in a reader. A value that may
legitimately be undefined (a metric of a slice whose label is constant) is made `None` first, by
`finite`, and the reason it is undefined travels beside it (see components.evaluation.blessing).
Every string in it is redacted on the way (components.redaction): no known secret value is written.
"""
import json
import math

from components.redaction import redact_value


def parse_object(value, flag):
    """A dict from a JSON object given as text (or already a dict); {} for empty text. Anything else stops with
    one line naming `flag`."""
    from components.errors import StageError

    if isinstance(value, dict):
        return value
    if not (value or "").strip():
        return {}
    try:
        parsed = json.loads(value)
    except ValueError as error:
        raise StageError(f"{flag} {value[:80]!r} is not JSON ({error}): give an object, e.g. "
                         "'{\"num_layers\": 3}'.") from None
    if not isinstance(parsed, dict):
        raise StageError(f"{flag} {value[:80]!r} is not a JSON object: give one, e.g. '{{\"num_layers\": 3}}'.")
    return parsed


def is_finite_number(value):
    """True for an int or a finite float (a bool is not a number here)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def finite(value):
    """A copy of `value` (dicts, lists and tuples within it too) with every NaN or infinite float as None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(item) for item in value]
    return value


def dumps(value, **options):
    """`json.dumps` that raises ValueError on NaN or infinity instead of writing invalid JSON."""
    return json.dumps(redact_value(value), allow_nan=False, **options)


def dump(value, sink, **options):
    json.dump(redact_value(value), sink, allow_nan=False, **options)


def write(path, value, indent=2, **options):
    """Writes `value` as JSON to the local file `path`."""
    text = dumps(value, indent=indent, **options)
    with open(path, "w", encoding="utf-8") as sink:
        sink.write(text)


def _refuse_constant(name):
    raise ValueError(f"{name} is not JSON")


def loads_strict(text):
    """`json.loads` that refuses NaN, Infinity and -Infinity, as a strict reader does."""
    return json.loads(text, parse_constant=_refuse_constant)
