"""Whether the role ingest connects as can only read; ingest refuses one that can do more.

A read-only transaction stops a query's writes to tables, but a role's privileges reach further: a
superuser or a member of `pg_read_server_files` reads the server's files, `pg_execute_server_program`
runs programs on it, a REPLICATION role controls replication, and a role that may write or owns objects
is one mistake away from changing them. Before the query runs, every connection ingest opens asks the
server what its role holds, directly or through the roles it is a member of:

- the attributes SUPERUSER, REPLICATION, BYPASSRLS, CREATEROLE and CREATEDB;
- membership in the predefined roles that act on the server (`PRIVILEGED_ROLES`);
- ownership of tables, views, sequences, schemas, functions, databases and large objects;
- INSERT, UPDATE (also on single columns), DELETE, TRUNCATE or TRIGGER on any table, view or foreign table;
  USAGE or UPDATE on any sequence (nextval, setval); CREATE on any schema or database.

TEMPORARY on the database is not counted: PostgreSQL grants it to every role by default, and the objects
it allows vanish with the session (the read-only session cannot create them anyway). The SQL for a role
that passes is in docs/sources.md ("A read-only role"); `--allow-privileged-role` runs with any role.
"""
from components.errors import StageError

# Predefined roles that act on the server or write (their names differ by PostgreSQL version; absent ones
# simply match nothing).
PRIVILEGED_ROLES = ("pg_read_server_files", "pg_write_server_files", "pg_execute_server_program",
                    "pg_signal_backend", "pg_write_all_data", "pg_checkpoint", "pg_create_subscription",
                    "pg_maintain")
_SHOWN_FINDINGS = 4

# One row per thing the session's role holds beyond reading: (order, description). `held` is every role
# whose privileges the session has or can take (pg_has_role MEMBER: itself, and the roles it belongs to).
# Write privileges on the system catalogs are PostgreSQL's own grants to every role and act on the session
# only (UPDATE on pg_settings is SET), so they are not counted.
_FINDINGS = """
WITH held AS (
    SELECT oid, rolname, rolsuper, rolreplication, rolbypassrls, rolcreaterole, rolcreatedb
    FROM pg_roles WHERE pg_has_role(current_user, oid, 'MEMBER')),
relations AS (
    SELECT c.oid, c.relkind, c.relowner, quote_ident(n.nspname) || '.' || quote_ident(c.relname) AS name,
           n.nspname IN ('pg_catalog', 'information_schema') AS system,
           CASE c.relkind WHEN 'S' THEN 'sequence' WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view'
                          WHEN 'f' THEN 'foreign table' ELSE 'table' END AS kind
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S'))
SELECT a.rank, a.attribute || CASE WHEN h.rolname = current_user THEN '' ELSE ' through role ' || h.rolname END
FROM held h, LATERAL (VALUES (1, 'superuser', h.rolsuper), (2, 'REPLICATION', h.rolreplication),
                             (3, 'BYPASSRLS', h.rolbypassrls), (4, 'CREATEROLE', h.rolcreaterole),
                             (5, 'CREATEDB', h.rolcreatedb)) AS a (rank, attribute, holds)
WHERE a.holds
UNION ALL
SELECT 10, 'member of ' || rolname FROM held WHERE rolname = ANY (%(privileged_roles)s)
UNION ALL
SELECT 20, 'owner of ' || kind || ' ' || name FROM relations WHERE pg_has_role(current_user, relowner, 'MEMBER')
UNION ALL
SELECT 20, 'owner of schema ' || quote_ident(nspname) FROM pg_namespace
WHERE pg_has_role(current_user, nspowner, 'MEMBER')
UNION ALL
SELECT 20, 'owner of function ' || quote_ident(n.nspname) || '.' || quote_ident(p.proname)
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE pg_has_role(current_user, p.proowner, 'MEMBER')
UNION ALL
SELECT 20, 'owner of database ' || quote_ident(datname) FROM pg_database
WHERE pg_has_role(current_user, datdba, 'MEMBER')
UNION ALL
SELECT 20, 'owner of large object ' || oid FROM pg_largeobject_metadata
WHERE pg_has_role(current_user, lomowner, 'MEMBER')
UNION ALL
SELECT 30, p.privilege || ' on ' || r.kind || ' ' || r.name
FROM relations r, (VALUES ('INSERT'), ('UPDATE'), ('DELETE'), ('TRUNCATE'), ('TRIGGER')) AS p (privilege)
WHERE r.relkind <> 'S' AND NOT r.system AND NOT pg_has_role(current_user, r.relowner, 'MEMBER')
  AND CASE WHEN p.privilege IN ('INSERT', 'UPDATE') THEN has_any_column_privilege(r.oid, p.privilege)
           ELSE has_table_privilege(r.oid, p.privilege) END
UNION ALL
SELECT 30, p.privilege || ' on sequence ' || r.name
FROM relations r, (VALUES ('USAGE'), ('UPDATE')) AS p (privilege)
WHERE r.relkind = 'S' AND NOT pg_has_role(current_user, r.relowner, 'MEMBER')
  AND has_sequence_privilege(r.oid, p.privilege)
UNION ALL
SELECT 30, 'CREATE on schema ' || quote_ident(nspname) FROM pg_namespace
WHERE NOT pg_has_role(current_user, nspowner, 'MEMBER') AND has_schema_privilege(oid, 'CREATE')
UNION ALL
SELECT 30, 'CREATE on database ' || quote_ident(datname) FROM pg_database
WHERE NOT pg_has_role(current_user, datdba, 'MEMBER') AND has_database_privilege(oid, 'CREATE')
ORDER BY 1, 2
"""


def role_privileges(connection):
    """(the session's role, what it holds beyond reading: short descriptions, most serious first)."""
    with connection.cursor() as cursor:
        cursor.execute(_FINDINGS, {"privileged_roles": list(PRIVILEGED_ROLES)})
        findings = [description for _, description in cursor.fetchall()]
        cursor.execute("SELECT current_user")
        role = cursor.fetchone()[0]
    return role, findings


def check_role(connection, allow_privileged_role=False):
    """Refuses, with one line, a session whose role can do more than read (see the module's docstring),
    unless `allow_privileged_role`; then returns what the role holds beyond reading ("" for nothing)."""
    role, findings = role_privileges(connection)
    if not findings:
        return ""
    shown = ", ".join(findings[:_SHOWN_FINDINGS])
    if len(findings) > _SHOWN_FINDINGS:
        shown += f" and {len(findings) - _SHOWN_FINDINGS} more"
    if allow_privileged_role:
        return f"the PostgreSQL role {role!r} can do more than read ({shown})"
    raise StageError(f"ingest refuses to query as the PostgreSQL role {role!r}, which can do more than read "
                     f"({shown}): connect as a role that can only read (docs/sources.md, \"A read-only role\", "
                     "has the SQL to create one), or pass --allow-privileged-role to use this one anyway.")
