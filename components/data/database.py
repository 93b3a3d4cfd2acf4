"""How ingest reaches a PostgreSQL database: the environment variable with its URL, and how many ranges a
partitioned query is read in by default. Kept apart from components/data/postgres.py, which imports Beam,
so the command line and the pipeline definition can name them cheaply."""
DATABASE_URL_VARIABLE = "LIVING_PIPELINE_DATABASE_URL"
DEFAULT_QUERY_PARTITIONS = 4
