"""Data in and out of the pipeline: the sources ingest reads (CSV, Parquet, Avro, TFRecords, PostgreSQL), tf.Example
and TFRecord writing, and where stages put things inside their artifacts.
"""
