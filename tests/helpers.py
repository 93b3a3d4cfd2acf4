"""Helpers the test files share: the repository's root, a free loopback port, a tool's path, and ways to compare
examples and metrics that two runs wrote."""
import contextlib
import glob
import os
import shutil
import socket
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    """A loopback port that nothing listens on."""
    return free_ports(1)[0]


def free_ports(count):
    """`count` different loopback ports that nothing listens on: each stays bound until all are chosen, so the
    system cannot hand out one of them twice (one port asked for at a time, it can)."""
    with contextlib.ExitStack() as probes:
        ports = []
        for _ in range(count):
            probe = probes.enter_context(socket.socket())
            probe.bind(("127.0.0.1", 0))
            ports.append(probe.getsockname()[1])
        return ports


def tool(name):
    """A command-line tool from this environment's bin folder (pip-installed), or its tools environment's
    (`make test` keeps some there: Makefile, TEST_TOOLS), else from PATH."""
    bin_folder = os.path.dirname(sys.executable)
    for folder in (bin_folder, os.path.join(os.path.dirname(bin_folder), "tools", "bin")):
        if os.path.exists(os.path.join(folder, name)):
            return os.path.join(folder, name)
    return shutil.which(name)


def records(folder, split):
    """A split's serialized examples, file by file in name order."""
    import tensorflow as tf

    from components.data.layout import examples_pattern

    return [bytes(record.numpy()) for path in sorted(glob.glob(examples_pattern(folder, split)))
            for record in tf.data.TFRecordDataset(path, compression_type="GZIP")]


def transformed_columns(folder, split):
    """A split's transformed examples: each feature's values, sorted (floats close to the same sorted values stay
    close, value for value), and the rows' whole numbers and text, as a sorted list of rows."""
    import tensorflow as tf

    columns, rows = {}, []
    for record in records(folder, split):
        row = []
        for name, feature in sorted(tf.train.Example.FromString(record).features.feature.items()):
            kind = feature.WhichOneof("kind")
            values = list(getattr(feature, kind).value) if kind else []
            columns.setdefault(name, []).extend(values)
            if kind != "float_list":
                row.append((name, tuple(values)))
        rows.append(tuple(row))
    return {name: sorted(values) for name, values in columns.items()}, sorted(rows)


def approximately(value):
    """`value` (JSON: dicts, lists, numbers, text) with its floats as pytest.approx(value, rel=1e-6)."""
    if isinstance(value, dict):
        return {key: approximately(item) for key, item in value.items()}
    if isinstance(value, list):
        return [approximately(item) for item in value]
    return pytest.approx(value, rel=1e-6) if isinstance(value, float) else value
