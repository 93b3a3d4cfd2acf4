"""Failures the data causes inside TensorFlow Transform, training or TFMA, as one line that names the column.

TensorFlow reports data it cannot take deep inside Beam, as a graph node's error ("Cast string to float is
not supported [[{{node Cast_1}}]]", "Key: bmi, Index: 0. Data types don't match"), wrapped in Beam's and
TFT's own errors: without help that reaches the user as an unexpected error to report. Here:

- `string_casts` finds, before any data is read, the columns a preprocessing_fn casts from text to a number,
  which TensorFlow cannot do: transform refuses such a column with one line naming it (`text_cast_line`).
- `describe_data_error` turns a failure of a Beam pipeline that TensorFlow raised on the data into one line
  naming the column (from the message, or from the node's inputs in a traced graph) and the value, or
  returns None for anything else, which stays an internal error with its traceback in the stage's log.
"""
import re

_NODE = re.compile(r"(?:\{\{node |Detected at node '?)([\w/.-]+)")
# (pattern, what it says about the data, what to do); the named groups `column`, `value`, `actual`,
# `expected` fill them in.
_CLEAN = "clean the column (or the module's handling of it) and run again"
_PATTERNS = (
    (re.compile(r"Key: (?P<column>[^,\s]+), Index: \d+\.\s+Data types don't match\. (?:Data type: (?P<actual>\w+) "
                r"but expected type: (?P<expected>\w+)|Expected type: (?P<expected2>\w+), Actual type: "
                r"(?P<actual2>\w+))"),
     "column {column!r} holds {actual} values where the model expects {expected}", _CLEAN),
    (re.compile(r"Feature: (?P<column>\S+) \(data type: (?P<expected>\w+)\) is required but could not be found"),
     "column {column!r} ({expected}) is missing from some examples, and the model requires it", _CLEAN),
    (re.compile(r"Cast string to (?P<expected>\w+) is not supported"),
     "{columns} holds text, which the module casts to {expected} (TensorFlow cannot cast text to numbers)", _CLEAN),
    (re.compile(r"StringToNumberOp could not correctly convert string: (?P<value>.*?)(?: \[\[| \[Op:|\"|$)"),
     "{columns} has the value {value!r}, which is not a number (tf.strings.to_number in the module)", _CLEAN),
    (re.compile(r"Received a label value of (?P<value>-?\d+) which is outside the valid range of \[0, "
                r"(?P<classes>\d+)\)"),
     "the label {label!r} has the class id {value}, outside the model's {classes} classes (0 to {last}); -1 is a "
     "label value the train split does not have, so its vocabulary does not either",
     "give the train split every label value (more rows, other --split-ratios), or drop the rare ones"),
)


def _messages(error):
    """The messages of `error` and of the errors it was raised from, outermost first."""
    seen = []
    while error is not None and all(error is not other for other in seen):
        seen.append(error)
        error = error.__cause__ or error.__context__
    return [" ".join(str(item).split()) for item in seen]


def describe_data_error(error, doing, label_key="", columns_of=None):
    """One line for a failure that TensorFlow raised on the data, or None: "<doing> failed on the data: <what
    the data holds>: <what to do>". `columns_of(node name)` gives the input columns a graph node is computed
    from (`traced_columns`), where the message names the column only through its node; `label_key` is the
    module's LABEL_KEY."""
    for message in _messages(error):
        for pattern, template, remedy in _PATTERNS:
            match = pattern.search(message)
            if not match:
                continue
            found = {key: value for key, value in match.groupdict().items() if value is not None}
            found.setdefault("expected", found.get("expected2", ""))
            found.setdefault("actual", found.get("actual2", ""))
            node = _NODE.search(message[match.start():]) or _NODE.search(message)
            columns = columns_of(node[1]) if node and columns_of else []
            found["columns"] = ("column " + " or ".join(repr(c) for c in columns) if columns
                                else "a column of the data")
            if "classes" in found:
                found["last"] = int(found["classes"]) - 1
            what = template.format(label=label_key, **found)
            return f"{doing} failed on the data: {what}: {remedy}."
    return None


def traced_columns(graph, structured_inputs):
    """A function: a graph node's name -> the input columns it is computed from ([] for an unknown node)."""
    from tensorflow_transform import graph_tools

    def columns_of(node):
        try:
            operation = graph.get_operation_by_name(node)
            outputs = list(operation.outputs) or [operation]
            return sorted(graph_tools.get_dependent_inputs(graph, structured_inputs, outputs[:1]))
        except Exception:  # a node this trace lacks, or one TFT cannot walk back, names no column
            return []
    return columns_of


def string_casts(graph, structured_inputs):
    """[(column, target type)] for each input column that a traced preprocessing_fn casts from text to a number."""
    import tensorflow as tf
    from tensorflow_transform import graph_tools

    found = []
    for operation in graph.get_operations():
        if operation.type != "Cast" or operation.get_attr("SrcT") != tf.string:
            continue
        target = tf.as_dtype(operation.get_attr("DstT"))
        if target == tf.string:
            continue
        for column in sorted(graph_tools.get_dependent_inputs(graph, structured_inputs, [operation.outputs[0]])):
            if (column, target.name) not in found:
                found.append((column, target.name))
    return found


def text_cast_line(column, target, module, sample=None):
    """The one line for a column that holds text where the module's preprocessing_fn casts it to a number."""
    example = f" (e.g. {sample!r})" if sample is not None else ""
    return (f"Column {column!r} holds text{example}, but preprocessing_fn of --module {module!r} casts it to "
            f"{target}, which TensorFlow cannot do with text: make every value of {column!r} a number (empty "
            "cells are fine), or, if text is expected there, parse or encode it in the module "
            "(tf.strings.to_number, tft.compute_and_apply_vocabulary).")
