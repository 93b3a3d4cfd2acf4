"""Floors the benchmark measures each stage against, on the same machine and in the same run.

- ingest floor: read the same CSV files with pyarrow and write the same gzipped TFRecords of
  tf.Examples in one tight loop (tfx-bsl's C++ encoder, TensorFlow's record writer): no Beam, no
  type inference pass, no split. What any CSV-to-TFRecord step must at least spend.
- import floor: start Python and import TensorFlow and TFDV: what a stage that needs them spends
  before it does anything.

Each floor is timed as a whole process (`python -m benchmarks.floors ingest ...`), as the stages are.
"""
import argparse
import glob
import os
import subprocess
import sys
import time


def ingest_floor(pattern, output_dir):
    import pyarrow.csv
    import tensorflow as tf
    from tfx_bsl.coders import example_coder

    os.makedirs(output_dir, exist_ok=True)
    encoder = example_coder.RecordBatchToExamplesEncoder()
    rows = 0
    with tf.io.TFRecordWriter(os.path.join(output_dir, "floor.gz"), options="GZIP") as writer:
        for path in sorted(glob.glob(pattern)):
            reader = pyarrow.csv.open_csv(path, convert_options=pyarrow.csv.ConvertOptions(
                strings_can_be_null=True))
            for batch in reader:
                arrays = [_as_lists(column) for column in batch.columns]
                for record in encoder.encode(pyarrow.RecordBatch.from_arrays(arrays, batch.schema.names)):
                    writer.write(record)
                rows += batch.num_rows
    return rows


def _as_lists(column):
    """A column as one-value lists (null stays null), the shape tf.Example features take."""
    import numpy as np
    import pyarrow

    offsets = np.arange(len(column) + 1, dtype=np.int64)
    if pyarrow.types.is_string(column.type):
        values = column.fill_null("").cast(pyarrow.large_binary())
    elif pyarrow.types.is_floating(column.type):
        values = column.fill_null(0.0).cast(pyarrow.float32())
    else:
        values = column.fill_null(0)
    return pyarrow.LargeListArray.from_arrays(pyarrow.array(offsets), values, mask=column.is_null())


REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def timed_process(args):
    """Wall seconds of `python <args>` as a separate process, started in the repository."""
    started = time.monotonic()
    subprocess.run([sys.executable, *args], check=True, capture_output=True, cwd=REPO)
    return time.monotonic() - started


def measure_floors(pattern, scratch_dir):
    return {
        "import_seconds": min(timed_process(["-c", "import tensorflow, tensorflow_data_validation"])
                              for _ in range(3)),
        "ingest_seconds": timed_process(["-m", "benchmarks.floors", "ingest", pattern, scratch_dir]),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("floor", choices=["ingest"])
    parser.add_argument("pattern")
    parser.add_argument("output_dir")
    args = parser.parse_args()
    print(ingest_floor(args.pattern, args.output_dir))


if __name__ == "__main__":
    main()
