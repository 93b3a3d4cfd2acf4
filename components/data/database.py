"""How ingest reaches a PostgreSQL database: the environment variable with its URL, how many ranges a
partitioned query is read in by default, and how long one of its statements may run. Kept apart from
components/data/postgres.py, which imports Beam, so the command line and the pipeline definition can name
them cheaply."""
DATABASE_URL_VARIABLE = "LIVING_PIPELINE_DATABASE_URL"
DEFAULT_QUERY_PARTITIONS = 4
# --query-timeout: PostgreSQL's statement_timeout and idle_in_transaction_session_timeout, in seconds; at most
# what those settings hold (2^31 - 1 milliseconds, about 24 days).
DEFAULT_QUERY_TIMEOUT_SECONDS = 600
MAX_QUERY_TIMEOUT_SECONDS = (2 ** 31 - 1) // 1000
