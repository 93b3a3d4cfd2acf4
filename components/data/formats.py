"""The names of the file formats ingest reads; no Beam here, so the command line checks --data-format with them
(the readers are in `components/data/sources.py` and, for CSV, `components/stage_logic/ingest.py`)."""

CSV, PARQUET, AVRO, TFRECORD = "csv", "parquet", "avro", "tfrecord"
FORMATS = (CSV, PARQUET, AVRO, TFRECORD)
