"""Hostile `--query`s and roles against a real PostgreSQL server (issue 30), and what still runs.

Each query the issue found acting on the database (a large object imported, a replication slot made, a
backend ended, the configuration reloaded, statistics reset, a server file read, a row deleted through
dblink by a SELECT-only role, ingest held by `pg_sleep(3600)`) is refused with one line, and the server is
the same afterwards, even as a superuser let through with `allow_privileged_role`. Roles that can do more
than read are refused, naming what they hold; the read-only role docs/sources.md documents is taken, and
an ordinary analytic query (joins, aggregates, window functions, CTEs, casts, date functions, random
sampling, extension functions declared IMMUTABLE) runs through it. A query past `--query-timeout` ends
with one line, and the server is left running nothing of it.
"""
import contextlib
import time

import psycopg
import pytest

from components.data import postgres
from components.data.database import DATABASE_URL_VARIABLE
from components.errors import StageError
from components.stage_logic.ingest import ingest_examples
from pipeline_cli import main
from postgres_server import PASSWORD, USER

AUDIT_ROWS = [(i, f"entry {i}", f"2024-0{1 + i % 9}-1{i % 10}") for i in range(1, 41)]


@pytest.fixture(scope="module")
def server(postgres_url, reader_url):
    """The test server with dblink installed and an `audit` table the reader may SELECT; (owner, reader) URLs."""
    with psycopg.connect(postgres_url, autocommit=True) as connection:
        connection.execute("CREATE EXTENSION IF NOT EXISTS dblink")
        connection.execute("DROP TABLE IF EXISTS audit, scratch")
        connection.execute("CREATE TABLE audit (id integer PRIMARY KEY, note text, logged_on date)")
        connection.execute("CREATE TABLE scratch (id integer)")
        connection.execute("INSERT INTO scratch VALUES (1), (2)")
        with connection.cursor() as cursor:
            cursor.executemany("INSERT INTO audit VALUES (%s, %s, %s)", AUDIT_ROWS)
    return postgres_url, reader_url


def state(owner_url):
    """What the hostile queries would change: audit rows, large objects, replication slots, statistics."""
    with psycopg.connect(owner_url, autocommit=True) as connection:
        def one(sql):
            return connection.execute(sql).fetchall()
        return {"audit": one("SELECT * FROM audit ORDER BY id"),
                "large objects": one("SELECT oid FROM pg_largeobject_metadata"),
                "replication slots": one("SELECT slot_name FROM pg_replication_slots"),
                "statistics reset": one("SELECT stats_reset FROM pg_stat_database WHERE datname = current_database()"),
                "functions": one("SELECT count(*) FROM pg_proc")}


def refused(tmp_path, query, **settings):
    """The one line ingest refuses `query` with; nothing may be written."""
    with pytest.raises(StageError) as raised:
        ingest_examples("", str(tmp_path / "out"), query=query, **settings)
    message = str(raised.value)
    assert "\n" not in message, message
    return message


def dblink_connection(owner_url):
    """The connection string dblink needs to reach the server as its superuser."""
    host, port = owner_url.split("@")[1].split("/")[0].split(":")
    return f"host={host} port={port} user={USER} password={PASSWORD} dbname=postgres"


def dblink_delete(owner_url, table="audit"):
    return f"SELECT dblink_exec('{dblink_connection(owner_url)}', 'DELETE FROM {table}') AS done"


def hostile_queries(owner_url, victim_pid):
    """(query, what the refusal names): the issue's queries, and the same calls spelled or hidden otherwise."""
    return [
        ("SELECT lo_import('/etc/hostname') AS object", "calls lo_import(), which creates, reads or writes large "
                                                        "objects"),
        ("SELECT pg_create_physical_replication_slot('ingest_slot') AS slot",
         "calls pg_create_physical_replication_slot(), which acts on replication slots"),
        (f"SELECT pg_terminate_backend({victim_pid}) AS ended", "calls pg_terminate_backend(), which signals"),
        ("SELECT pg_reload_conf() AS reloaded", "calls pg_reload_conf(), which signals or controls server processes"),
        ("SELECT pg_stat_reset() AS reset", "calls pg_stat_reset(), which resets statistics"),
        ("SELECT pg_read_file('/etc/hostname') AS host", "calls pg_read_file(), which reads or writes server files"),
        (dblink_delete(owner_url), "calls dblink_exec(), which opens connections outside this session"),
        ("SELECT id, pg_sleep(3600) AS slept FROM audit", "calls pg_sleep(), which only waits"),
        # Schema-qualified, quoted, upper case, in FROM, inside a CTE or a scalar subquery:
        ("SELECT PG_CATALOG.\"lo_import\"('/etc/hostname') AS object", "calls pg_catalog.lo_import()"),
        ("SELECT * FROM pg_catalog.pg_ls_dir('.') AS name", "calls pg_catalog.pg_ls_dir(), which reads or writes"),
        ("WITH a AS (SELECT id FROM audit) SELECT (SELECT LO_UNLINK(1)) AS gone FROM a", "calls lo_unlink()"),
        ("SELECT set_config('default_transaction_read_only', 'off', false) AS x",
         "calls set_config(), which changes the configuration"),
        ("SELECT query_to_xml('SELECT lo_import(''/etc/hostname'')', true, true, '') AS x",
         "calls query_to_xml(), which runs SQL given as text"),
        ("SELECT pg_advisory_lock(1) AS locked", "calls pg_advisory_lock(), which takes advisory locks"),
        ("SELECT * FROM audit FOR UPDATE", "locks the rows it reads"),
        ("WITH gone AS (DELETE FROM audit RETURNING *) SELECT * FROM gone", "holds DELETE inside it"),
    ]


@pytest.fixture
def victim(server):
    """Another session of the server, which pg_terminate_backend would end."""
    with psycopg.connect(server[0], autocommit=True) as connection:
        yield connection


@pytest.mark.slow  # a PostgreSQL server
@pytest.mark.parametrize("role", ["superuser let through", "read-only role"])
def test_the_issues_hostile_queries_are_refused_with_one_line_and_change_nothing(tmp_path, server, victim, role,
                                                                                 monkeypatch):
    owner_url, reader_url = server
    monkeypatch.setenv(DATABASE_URL_VARIABLE, owner_url if role == "superuser let through" else reader_url)
    before = state(owner_url)
    victim_pid = victim.info.backend_pid
    for query, expected in hostile_queries(owner_url, victim_pid):
        started = time.monotonic()
        message = refused(tmp_path, query, query_timeout=2, allow_privileged_role=role == "superuser let through")
        assert expected in message, (query, message)
        assert message.startswith("--query "), message
        assert time.monotonic() - started < 10, "refused before anything ran"
        assert PASSWORD not in message
    assert state(owner_url) == before
    assert victim.execute("SELECT 1").fetchone() == (1,), "the other session is still there"
    assert not (tmp_path / "out").exists()


@pytest.mark.slow  # a PostgreSQL server
def test_without_the_query_check_dblink_lets_a_select_only_role_delete(server):
    """The control: ingest's read-only session alone does not stop dblink_exec (so the check above matters)."""
    owner_url, reader_url = server
    delete = dblink_delete(owner_url, "scratch WHERE id = 2")
    with contextlib.closing(postgres._connect(reader_url)) as connection:
        connection.execute(delete)
        connection.rollback()
    with psycopg.connect(owner_url) as connection:
        assert connection.execute("SELECT id FROM scratch").fetchall() == [(1,)], "deleted through dblink"


ROLES = {
    # role: (how it is made, what the refusal names)
    "superuser": (None, "superuser"),
    "inserts": ("GRANT SELECT, INSERT ON audit TO {role}", "INSERT on table public.audit"),
    "truncates": ("GRANT SELECT, TRUNCATE ON audit TO {role}", "TRUNCATE on table public.audit"),
    "updates a column": ("GRANT SELECT, UPDATE (note) ON audit TO {role}", "UPDATE on table public.audit"),
    "owns a table": ("CREATE TABLE owned_by_{role} (id int); ALTER TABLE owned_by_{role} OWNER TO {role}",
                     "owner of table public.owned_by_"),
    "creates in a schema": ("GRANT CREATE ON SCHEMA public TO {role}", "CREATE on schema public"),
    "creates databases": ("ALTER ROLE {role} CREATEDB", "CREATEDB"),
    "replicates": ("ALTER ROLE {role} REPLICATION", "REPLICATION"),
    "bypasses row security": ("ALTER ROLE {role} BYPASSRLS", "BYPASSRLS"),
    "reads server files": ("GRANT pg_read_server_files TO {role}", "member of pg_read_server_files"),
    "runs server programs": ("GRANT pg_execute_server_program TO {role}", "member of pg_execute_server_program"),
    "writes server files": ("GRANT pg_write_server_files TO {role}", "member of pg_write_server_files"),
    "through a group": ("CREATE ROLE {role}_group NOLOGIN; GRANT INSERT ON audit TO {role}_group; "
                        "GRANT {role}_group TO {role}", "INSERT on table public.audit"),
}


def role_url(owner_url, name, grant):
    """A login role `name` that may connect and SELECT audit, plus `grant`; its URL."""
    with psycopg.connect(owner_url, autocommit=True) as connection:
        if not connection.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [name]).fetchone():
            connection.execute(f"CREATE ROLE {name} LOGIN PASSWORD 'x-{name}'")
            connection.execute(f"GRANT SELECT ON audit TO {name}")
            connection.execute(grant.format(role=name))
    return owner_url.replace(f"{USER}:{PASSWORD}@", f"{name}:x-{name}@")


@pytest.mark.slow  # a PostgreSQL server
@pytest.mark.parametrize("kind", list(ROLES))
def test_a_role_that_can_do_more_than_read_is_refused_naming_what_it_holds(server, kind, monkeypatch):
    owner_url, _ = server
    grant, expected = ROLES[kind]
    url = owner_url if grant is None else role_url(owner_url, "role_" + kind.replace(" ", "_"), grant)
    monkeypatch.setenv(DATABASE_URL_VARIABLE, url)
    with pytest.raises(StageError) as raised:
        postgres.describe_query("SELECT id, note FROM audit")
    message = str(raised.value)
    assert message.startswith("ingest refuses to query as the PostgreSQL role "), message
    assert expected in message and "\n" not in message, message
    assert message.endswith('connect as a role that can only read (docs/sources.md, "A read-only role", has the SQL '
                            'to create one), or pass --allow-privileged-role to use this one anyway.'), message
    # --allow-privileged-role takes it, and the query checks still apply.
    source = postgres.describe_query("SELECT id, note FROM audit",
                                     settings=postgres.QuerySettings(allow_privileged_role=True))
    assert source.column_types == {"id": "int", "note": "string"}


@pytest.mark.slow  # a PostgreSQL server
def test_the_documented_read_only_role_is_taken_and_says_nothing(server, monkeypatch, capsys):
    monkeypatch.setenv(DATABASE_URL_VARIABLE, server[1])
    source = postgres.describe_query("SELECT id, note FROM audit", "id", 2)
    assert source.column_types == {"id": "int", "note": "string"} and len(source.partitions) == 2
    assert "more than read" not in capsys.readouterr().out


@pytest.fixture(scope="module")
def defined_functions(server):
    """Functions and an operator defined in the database, as a DBA might have left them."""
    statements = [
        "CREATE OR REPLACE FUNCTION quarter_of(day date) RETURNS integer LANGUAGE sql IMMUTABLE "
        "AS $$ SELECT extract(quarter FROM day)::integer $$",
        "CREATE OR REPLACE FUNCTION note_for(id integer) RETURNS text LANGUAGE sql "  # VOLATILE: the default
        f"AS $$ SELECT dblink_exec('{dblink_connection(server[0])}', 'DELETE FROM audit') $$",
        "CREATE OR REPLACE FUNCTION owner_note(id integer) RETURNS text LANGUAGE sql STABLE SECURITY DEFINER "
        "AS $$ SELECT 'n' || id $$",
        "CREATE OR REPLACE FUNCTION shout(audit) RETURNS text LANGUAGE sql AS $$ SELECT upper($1.note) $$",
        "CREATE OR REPLACE FUNCTION bump(integer, integer) RETURNS integer LANGUAGE sql AS $$ SELECT $1 + $2 $$",
        "DROP OPERATOR IF EXISTS === (integer, integer)",
        "CREATE OPERATOR === (LEFTARG = integer, RIGHTARG = integer, FUNCTION = bump)",
    ]
    with psycopg.connect(server[0], autocommit=True) as connection:
        for statement in statements:
            connection.execute(statement)
    return server


@pytest.mark.slow  # a PostgreSQL server
@pytest.mark.parametrize("query,expected", [
    ("SELECT id, note_for(id) AS note FROM audit", "calls public.note_for(), which is defined in the database "
                                                   "(not built into PostgreSQL) and declared VOLATILE"),
    ("SELECT id, public.owner_note(id) AS note FROM audit", "calls public.owner_note(), which is defined in the "
                                                            "database (not built into PostgreSQL) and declared "
                                                            "SECURITY DEFINER"),
    ("SELECT a.id, a.shout AS loud FROM audit AS a", "calls public.shout()"),
    ("SELECT id, id === 1 AS bumped FROM audit", "calls the operator public.==="),
])
def test_functions_defined_in_the_database_that_may_act_are_refused(server, defined_functions, monkeypatch, query,
                                                                    expected):
    monkeypatch.setenv(DATABASE_URL_VARIABLE, server[1])
    before = state(server[0])
    with pytest.raises(StageError) as raised:
        postgres.describe_query(query)
    assert expected in str(raised.value) and "\n" not in str(raised.value), str(raised.value)
    assert "if it only reads, its owner can " in str(raised.value)
    assert state(server[0]) == before


ANALYTIC_QUERY = """
-- what a demanding analyst writes: a CTE, a self-join, window functions, aggregates, casts, dates, sampling
WITH daily AS (
    SELECT logged_on, count(*) AS entries, string_agg(note, '; ' ORDER BY id) AS notes
    FROM audit GROUP BY logged_on
)
SELECT a.id, upper(a.note) AS note, a.id % 3 = 0 AS third, quarter_of(a.logged_on) AS quarter,
       extract(dow FROM a.logged_on)::int AS weekday, date_trunc('month', a.logged_on)::date::text AS month,
       to_char(a.logged_on, 'YYYY-MM') AS period, (a.logged_on - date '2024-01-01') AS days_in,
       d.entries, length(d.notes) AS notes_length, coalesce(b.id, -1) AS previous_id,
       avg(a.id) OVER (ORDER BY a.id ROWS BETWEEN 2 PRECEDING AND CURRENT ROW)::float8 AS moving_average,
       rank() OVER (PARTITION BY d.entries ORDER BY a.id DESC) AS rank_in_day,
       round(sqrt(a.id)::numeric, 3) AS root, a.note ILIKE 'entry 1%' AS teens,
       a.id IN (SELECT id FROM audit WHERE id BETWEEN 5 AND 9) AS early,
       random() < 2 AS sampled, now() >= a.logged_on AS past
FROM audit AS a
JOIN daily AS d USING (logged_on)
LEFT JOIN audit AS b ON b.id = a.id - 1
WHERE a.id > 0 AND a.note LIKE 'entry%'
ORDER BY a.id
"""


@pytest.mark.slow  # a PostgreSQL server
def test_an_ordinary_analytic_query_runs_through_the_read_only_role(tmp_path, server, defined_functions,
                                                                    monkeypatch):
    monkeypatch.setenv(DATABASE_URL_VARIABLE, server[1])
    metadata = ingest_examples("", str(tmp_path / "out"), query=ANALYTIC_QUERY, query_partition_column="id",
                               query_partitions=3, min_eval_examples=1)
    assert sum(metadata["row_counts"].values()) == len(AUDIT_ROWS)
    assert metadata["column_types"]["quarter"] == "int" and metadata["column_types"]["moving_average"] == "float"


@pytest.mark.slow  # a PostgreSQL server
def test_a_query_past_the_time_limit_ends_with_one_line_and_leaves_nothing_running(tmp_path, server, monkeypatch):
    monkeypatch.setenv(DATABASE_URL_VARIABLE, server[1])
    forever = "SELECT count(*) AS n FROM (SELECT generate_series(1, 100000000000)) AS g"
    started = time.monotonic()
    message = refused(tmp_path, forever, query_timeout=2, split_ratios="train:1,eval:1", min_eval_examples=1)
    assert time.monotonic() - started < 60
    assert message == (f"ingest stopped --query '{forever}' after --query-timeout 2 seconds (PostgreSQL: canceling "
                       "statement due to statement timeout): make the query faster, or raise --query-timeout."), message
    # The same limit stops it where a partitioned query's bounds are read, before any worker starts.
    message = refused(tmp_path, forever, query_timeout=2, query_partition_column="n")
    assert message.startswith("ingest stopped --query ") and "--query-timeout 2 seconds" in message, message
    with psycopg.connect(server[0]) as connection:
        assert connection.execute("SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE "
                                  "'%generate_series(1, 100000000000)%' AND pid <> pg_backend_pid()").fetchone() == (0,)


@pytest.mark.slow  # a PostgreSQL server
def test_every_session_carries_the_time_limits(server):
    with contextlib.closing(postgres._connect(server[1], postgres.QuerySettings(timeout_seconds=7))) as connection:
        assert connection.execute("SHOW statement_timeout").fetchone() == ("7s",)
        assert connection.execute("SHOW idle_in_transaction_session_timeout").fetchone() == ("7s",)
        assert connection.execute("SHOW default_transaction_read_only").fetchone() == ("on",)
    with pytest.raises(StageError, match=r"^--query-timeout 0: give a whole number of seconds from 1 to 2147483 "):
        postgres.QuerySettings(timeout_seconds=0)


@pytest.mark.parametrize("command,flags,expected", [
    ("run", ["--query", "SELECT lo_import('/etc/hostname') AS o"],
     "Error: --query \"SELECT lo_import('/etc/hostname') AS o\" calls lo_import(), which creates, reads or writes "
     "large objects and server files: ingest only runs queries that read; leave the call out"),
    ("run", ["--query", "SELECT 1 AS one", "--query-timeout", "0"],
     "Error: --query-timeout 0: give a whole number from 1 to 2147483 (seconds)."),
    ("submit", ["--param", "query=SELECT pg_sleep(3600) AS slept"],
     "Error: --param query 'SELECT pg_sleep(3600) AS slept' calls pg_sleep(), which only waits"),
    ("submit", ["--param", "query=SELECT 1 AS one; DROP TABLE audit"],
     "Error: --param query 'SELECT 1 AS one; DROP TABLE audit' holds 2 statements"),
    ("submit", ["--param", "query_timeout=0"], "Error: --param query_timeout 0: give a whole number from 1"),
])
def test_the_command_line_refuses_a_hostile_query_before_anything_runs(tmp_path, capsys, command, flags, expected):
    if command == "run":
        argv = ["run", "--pipeline-root", str(tmp_path / "root"), "--serving-root", str(tmp_path / "serving")]
    else:
        spec = str(tmp_path / "pipeline.yaml")
        assert main(["compile", "--output", spec]) == 0
        capsys.readouterr()
        # Port 9 (discard) on loopback: were anything sent, the refusal would be about the connection instead.
        argv = ["submit", "--host", "http://127.0.0.1:9", "--spec", spec, "--param", "serving_root=/mnt/serving"]
    try:
        status = main(argv + flags)
    except SystemExit as exit_:
        status = exit_.code
    lines = capsys.readouterr().err.strip().splitlines()
    assert status in (1, 2) and len(lines) == 1 and lines[0].startswith(expected), lines
    assert not (tmp_path / "root").exists(), "nothing ran"
