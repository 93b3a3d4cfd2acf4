"""Ingest from PostgreSQL: a query's rows, read in parallel partitions, typed from the database's columns.

The connection string never passes through the pipeline: it comes from the environment of the process
that runs ingest (and of the Beam workers), `LIVING_PIPELINE_DATABASE_URL` (e.g.
`postgresql://user:password@host:5432/db`), or, when that is unset, libpq's own variables (`PGHOST`,
`PGPORT`, `PGUSER`, `PGPASSWORD`, `PGDATABASE`, `PGSERVICE`, `~/.pgpass`). It is read only when a
connection is opened, and error messages never show it or its password.

Columns are typed from their PostgreSQL types (see `components/data/sources.py` for how each becomes a
tf.Example feature). Given an integer partition column, the query's rows are read as several range
queries over that column (`WHERE column >= low AND column < high`, and one for its nulls), one per Beam
element, so Beam reads them in parallel; otherwise the query is read in one piece.

The query can only read, by construction:
- it is parsed with PostgreSQL's own grammar before anything is sent, and must be one SELECT (or WITH ...
  SELECT, VALUES, TABLE) that calls no function that acts beyond reading (components/data/query_check.py);
- the role every connection uses is checked first: one that can do more than read (a superuser, a member
  of pg_read_server_files, a role that may write or owns objects) is refused unless
  `--allow-privileged-role` (components/data/database_role.py);
- every statement and every idle transaction ends after `--query-timeout` seconds (statement_timeout and
  idle_in_transaction_session_timeout, startup parameters of every connection);
- it is sent as a subquery, `SELECT * FROM (<query>) AS source`, always with the extended query
  protocol (a prepared statement here, a server-side cursor in the readers), which carries exactly one
  statement: text that closes the subquery and appends `; COMMIT; DROP TABLE ...` is refused by the
  server as several commands before any of them runs;
- the session starts read-only (`default_transaction_read_only`, a startup parameter of the connection),
  and every transaction is opened READ ONLY, so even a function with side effects cannot write.
"""
import dataclasses
import json
import os

import apache_beam as beam

from components.data.database import (
    DATABASE_URL_VARIABLE,
    DEFAULT_QUERY_PARTITIONS,
    DEFAULT_QUERY_TIMEOUT_SECONDS,
    MAX_QUERY_TIMEOUT_SECONDS,
)
from components.data.database_role import check_role
from components.data.query_check import check_defined_calls, check_query, short_query
from components.data.sources import feature_value
from components.errors import StageError

_FETCH_ROWS = 2000
# Every session ingest opens is read-only from its first statement; added to the connection's own options.
_READ_ONLY_SESSION = "-c default_transaction_read_only=on"
# PostgreSQL's message when one prepared statement holds several commands.
_SEVERAL_COMMANDS = "cannot insert multiple commands into a prepared statement"
_JSON_OIDS = frozenset({114, 3802})
_INTEGER_OIDS = frozenset({20, 21, 23})
_COLUMN_TYPES = {
    20: "int", 21: "int", 23: "int", 26: "int", 16: "int", 1114: "int", 1184: "int",  # timestamps: µs
    700: "float", 701: "float", 1700: "float",
    25: "string", 1043: "string", 1042: "string", 19: "string", 18: "string", 2950: "string",
    114: "string", 3802: "string", 1082: "string", 1083: "string", 1266: "string",
    17: "bytes",
}


def database_url():
    """The connection string from the environment; empty means libpq's PG* variables."""
    return os.environ.get(DATABASE_URL_VARIABLE, "")


def _masked(text, url):
    """`text` without the connection string or its password."""
    import psycopg

    secrets = [url] if url else []
    try:
        secrets.append(psycopg.conninfo.conninfo_to_dict(url).get("password") or "")
    except psycopg.ProgrammingError:
        pass
    secrets.append(os.environ.get("PGPASSWORD", ""))
    for secret in sorted(filter(None, secrets), key=len, reverse=True):
        text = text.replace(secret, "***")
    return " ".join(text.split())


def _connection_source(url):
    return f"${DATABASE_URL_VARIABLE}" if url else "libpq's PG* environment variables"


@dataclasses.dataclass(frozen=True)
class QuerySettings:
    """How ingest's sessions are limited: `timeout_seconds` (--query-timeout) for any statement or idle
    transaction, and whether a role that can do more than read is taken (--allow-privileged-role)."""
    timeout_seconds: int = DEFAULT_QUERY_TIMEOUT_SECONDS
    allow_privileged_role: bool = False

    def __post_init__(self):
        if isinstance(self.timeout_seconds, bool) or not isinstance(self.timeout_seconds, int) \
                or not 1 <= self.timeout_seconds <= MAX_QUERY_TIMEOUT_SECONDS:
            raise StageError(f"--query-timeout {self.timeout_seconds!r}: give a whole number of seconds from 1 to "
                             f"{MAX_QUERY_TIMEOUT_SECONDS} (default: {DEFAULT_QUERY_TIMEOUT_SECONDS}).")


def _session_options(url, settings):
    """The connection's startup options: the user's own (URL or PGOPTIONS), then a read-only session whose
    statements and idle transactions end after the query timeout (later options win)."""
    import psycopg

    own = psycopg.conninfo.conninfo_to_dict(url).get("options") if url else None
    limits = (f"-c statement_timeout={settings.timeout_seconds}s "
              f"-c idle_in_transaction_session_timeout={settings.timeout_seconds}s")
    return " ".join(filter(None, [own if own is not None else os.environ.get("PGOPTIONS", ""), _READ_ONLY_SESSION,
                                  limits]))


def _connect(url, settings=QuerySettings()):
    """A read-only session, limited by `settings`, whose role has been checked (database_role.check_role)."""
    import psycopg

    try:
        connection = psycopg.connect(url, connect_timeout=10, options=_session_options(url, settings))
    except psycopg.Error as error:
        raise StageError(f"Cannot connect to PostgreSQL with {_connection_source(url)} "
                         f"({_masked(str(error), url)}): set {DATABASE_URL_VARIABLE} to "
                         "postgresql://USER:PASSWORD@HOST:PORT/DATABASE, or PGHOST, PGUSER, ...") from None
    connection.read_only = True
    if not settings.allow_privileged_role:
        try:
            check_role(connection)
            connection.rollback()  # the check's own transaction; the caller starts afresh
        except BaseException:
            connection.close()
            raise
    return connection


def _query_error(query, error, url, settings):
    message = _masked(getattr(error.diag, "message_primary", None) or str(error), url)
    if message == _SEVERAL_COMMANDS:
        return (f"--query {short_query(query)!r} holds more than one statement: give one read-only query "
                "(SELECT, WITH ... SELECT, VALUES or TABLE); nothing was run.")
    limit = f"--query-timeout {settings.timeout_seconds} second{'' if settings.timeout_seconds == 1 else 's'}"
    if "statement timeout" in message:
        return (f"ingest stopped --query {short_query(query)!r} after {limit} (PostgreSQL: {message}): make the "
                "query faster, or raise --query-timeout.")
    if "idle-in-transaction timeout" in message:
        return (f"ingest's session reading --query {short_query(query)!r} waited between rows longer than {limit} "
                f"(PostgreSQL: {message}): raise --query-timeout.")
    return f"The PostgreSQL query --query {short_query(query)!r} failed: {message}: fix the query."


def _subquery(query):
    return query.strip().rstrip(";").strip()


@dataclasses.dataclass(frozen=True)
class QuerySource:
    """What ingest needs to read a query: its columns' types and PostgreSQL type ids, the partitions, and the
    limits of every session that reads it."""
    query: str
    column_types: dict
    column_oids: dict
    partitions: list
    settings: QuerySettings = QuerySettings()


def _sql(query, partition_column, partition):
    """The SQL text for one partition: ('all',), ('range', low, high) or ('null',)."""
    from psycopg import sql

    # The query on lines of its own, so a trailing `-- comment` ends before the closing parenthesis.
    statement = sql.SQL("SELECT * FROM (\n{}\n) AS source").format(sql.SQL(_subquery(query)))
    if partition[0] == "range":
        return sql.SQL("{} WHERE {} >= {} AND {} < {}").format(
            statement, sql.Identifier(partition_column), sql.Literal(partition[1]),
            sql.Identifier(partition_column), sql.Literal(partition[2]))
    if partition[0] == "null":
        return sql.SQL("{} WHERE {} IS NULL").format(statement, sql.Identifier(partition_column))
    return statement


def partition_ranges(low, high, count):
    """[low, high] cut into at most `count` half-open integer ranges [start, stop) of equal width."""
    width = max(1, -(-(high - low + 1) // count))
    return [(start, min(start + width, high + 1)) for start in range(low, high + 1, width)]


def describe_query(query, partition_column="", partitions=DEFAULT_QUERY_PARTITIONS, settings=QuerySettings()):
    """Checks the query, the role and the functions it calls against the database; returns its column types
    and the partitions to read."""
    import psycopg
    from psycopg import sql

    if not _subquery(query):
        raise StageError("--query is empty: give a SELECT query.")
    calls = check_query(query)
    if partitions < 1:
        raise StageError(f"--query-partitions {partitions}: give 1 or more.")
    url = database_url()
    with _connect(url, settings) as connection:
        try:
            if settings.allow_privileged_role:
                privileged = check_role(connection, allow_privileged_role=True)
                if privileged:
                    print(f"ingest: {privileged}; taken because --allow-privileged-role is given.", flush=True)
            check_defined_calls(connection, query, calls)
            with connection.cursor() as cursor:
                # prepare=True: the extended query protocol, one statement at most (see the docstring).
                cursor.execute(sql.SQL("{} LIMIT 0").format(_sql(query, "", ("all",))), prepare=True)
                description = cursor.description
        except psycopg.Error as error:
            raise StageError(_query_error(query, error, url, settings)) from None
        names = [column.name for column in description]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise StageError(f"--query {short_query(query)!r} returns {', '.join(duplicates)} more than once: "
                             "give each column its own name (AS ...).")
        column_types, column_oids = {}, {}
        for column in description:
            if column.type_code not in _COLUMN_TYPES:
                type_name = psycopg.postgres.types.get(column.type_code)
                type_name = type_name.name if type_name else f"oid {column.type_code}"
                raise StageError(f"--query {short_query(query)!r}: column {column.name!r} has PostgreSQL type "
                                 f"{type_name}, which ingest does not take: cast it in the query, e.g. "
                                 f"{column.name}::text or extract(epoch from {column.name}).")
            column_types[column.name] = _COLUMN_TYPES[column.type_code]
            column_oids[column.name] = column.type_code
        if not partition_column:
            return QuerySource(query, column_types, column_oids, [("all",)], settings)
        if column_oids.get(partition_column) not in _INTEGER_OIDS:
            raise StageError(f"--query-partition-column {partition_column!r} is not an integer column of the "
                             f"query's result ({', '.join(names)}): partition on an integer column, or on none.")
        try:
            with connection.cursor() as cursor:
                cursor.execute(sql.SQL(
                    "SELECT min({column}), max({column}), count(*) FILTER (WHERE {column} IS NULL) FROM "
                    "({query}) AS source").format(column=sql.Identifier(partition_column),
                                                  query=_sql(query, "", ("all",))), prepare=True)
                low, high, nulls = cursor.fetchone()
        except psycopg.Error as error:
            raise StageError(_query_error(query, error, url, settings)) from None
    ranges = [] if low is None else [
        ("range", start, stop) for start, stop in partition_ranges(low, high, partitions)]
    return QuerySource(query, column_types, column_oids, ranges + ([("null",)] if nulls else []), settings)


class ReadQueryPartitions(beam.DoFn):
    """A partition of the query -> (None, {column: value}) for each row; failures go to 'errors'.

    The connection string is read from this worker's environment when the partition is read; it is never
    part of the pipeline.
    """

    def __init__(self, source, partition_column):
        self._query = source.query
        self._column_oids = source.column_oids
        self._partition_column = partition_column
        self._settings = source.settings

    def _converters(self, names):
        def json_text(value):
            return value if value is None or isinstance(value, str) else json.dumps(value, sort_keys=True)
        return [json_text if self._column_oids.get(name) in _JSON_OIDS else feature_value for name in names]

    def process(self, partition):
        import psycopg

        url = database_url()
        try:
            check_query(self._query)
            # A server-side cursor: psycopg always declares it with the extended query protocol.
            with _connect(url, self._settings) as connection, \
                    connection.cursor(name="living_pipeline_ingest") as cursor:
                cursor.itersize = _FETCH_ROWS
                cursor.execute(_sql(self._query, self._partition_column, partition))
                names, converters = None, None
                for row in cursor:
                    if names is None:
                        names = [column.name for column in cursor.description]
                        converters = self._converters(names)
                    yield None, {name: convert(value) for name, convert, value in zip(names, converters, row)}
        except StageError as error:
            yield beam.pvalue.TaggedOutput("errors", str(error))
        except psycopg.Error as error:
            yield beam.pvalue.TaggedOutput("errors", _query_error(self._query, error, url, self._settings))
