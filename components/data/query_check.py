"""What `--query` may be: one read-only SELECT, checked with PostgreSQL's own grammar before it is sent.

The read-only transaction stops writes to tables, but not functions with side effects: a superuser's
`lo_import` adds a large object, `pg_terminate_backend` ends other sessions, and `dblink_exec` writes
through a connection of its own, outside the transaction, even for a role that can only SELECT. So the
query is parsed with PostgreSQL's parser (pglast, the parser's own C code) and refused unless it is:

- one statement, a SELECT (or `WITH ... SELECT`, `VALUES`, `TABLE`), with no data-modifying `WITH`,
  no `SELECT ... INTO` and no `FOR UPDATE`/`FOR SHARE` (they write rows or tables);
- free of calls to the built-in functions that act beyond reading (`REFUSED_FUNCTIONS` below, matched
  by name whatever the schema, quoting or case): large objects, connections outside the session
  (dblink, postgres_fdw), backend signalling, replication slots and the write-ahead log, server files,
  configuration, statistics resets, advisory locks, sleeping, sequences, transaction ids, notifications,
  index maintenance, and the functions that run SQL given as text (which this check could not see);
- free of functions and operators defined in the database (extensions, user functions) that can act:
  `check_defined_calls` asks the server which of the names the query calls are not built into
  PostgreSQL, and refuses those declared VOLATILE or SECURITY DEFINER.

Why a list for built-ins and volatility for the rest: built-in functions are a fixed, known set, and most
volatile ones are what analytic queries need (`random()` for sampling, `clock_timestamp()`); so the few
that act are named. Functions defined in the database are unknown: PostgreSQL's own contract is that a
function declared STABLE or IMMUTABLE does not modify the database, and a VOLATILE one may do anything,
so the declaration the function's owner made decides (a SECURITY DEFINER function runs with its owner's
rights, so it is refused whatever it declares). Ordinary analytic queries (joins, aggregates, casts, date
and text functions, CTEs, window functions, and extension functions declared IMMUTABLE or STABLE, such as
PostGIS's or citext's) pass. Objects the database's owner defined and the query only names (views,
types, casts, row-level policies) are trusted as the owner made them.
"""
import re

from components.errors import StageError

# Built-in functions that act beyond reading, by why. A name ending in "*" is a prefix.
_REFUSED = {
    "creates, reads or writes large objects and server files": (
        "lo_*", "loread", "lowrite"),
    "opens connections outside this session": (
        "dblink*", "postgres_fdw_*"),
    "signals or controls server processes": (
        "pg_terminate_backend", "pg_cancel_backend", "pg_reload_conf", "pg_rotate_logfile*",
        "pg_log_backend_memory_contexts", "pg_log_standby_snapshot", "pg_promote"),
    "acts on replication slots or the write-ahead log": (
        "pg_create_physical_replication_slot", "pg_create_logical_replication_slot", "pg_drop_replication_slot",
        "pg_copy_physical_replication_slot", "pg_copy_logical_replication_slot", "pg_replication_slot_advance",
        "pg_sync_replication_slots", "pg_logical_slot_*", "pg_replication_origin_*", "pg_logical_emit_message",
        "pg_switch_wal", "pg_create_restore_point", "pg_backup_start", "pg_backup_stop", "pg_start_backup",
        "pg_stop_backup", "pg_wal_replay_pause", "pg_wal_replay_resume", "pg_wal_replay_wait"),
    "reads or writes server files": (
        "pg_read_file*", "pg_read_binary_file", "pg_ls_*", "pg_stat_file", "pg_current_logfile", "pg_file_*",
        "pg_logdir_ls", "pg_hba_file_rules", "pg_ident_file_mappings", "pg_show_all_file_settings"),
    "changes the configuration": ("set_config",),
    "resets statistics": ("pg_stat_reset*", "pg_stat_statements_reset"),
    "takes advisory locks": ("pg_advisory_*", "pg_try_advisory_*"),
    "only waits": ("pg_sleep*",),
    "advances a sequence": ("nextval", "setval"),
    "assigns a transaction id": ("txid_current", "pg_current_xact_id"),
    "sends notifications to other sessions": ("pg_notify",),
    "rewrites index data": ("brin_summarize_*", "brin_desummarize_range", "gin_clean_pending_list"),
    "writes the system catalogs": ("pg_import_system_collations", "binary_upgrade_*",
                                   "pg_stop_making_pinned_objects"),
    "runs SQL given as text (ingest could not check it)": (
        "query_to_xml*", "cursor_to_xml*", "ts_stat", "ts_rewrite"),
}
REFUSED_FUNCTIONS = {name: reason for reason, names in _REFUSED.items() for name in names}
_REFUSED_PATTERN = re.compile("|".join(
    re.escape(name[:-1]) + ".*" if name.endswith("*") else re.escape(name) for name in REFUSED_FUNCTIONS))
# A_Expr kinds whose name is an operator (the others, such as BETWEEN, name a construct).
_OPERATOR_KINDS = ("AEXPR_OP", "AEXPR_OP_ANY", "AEXPR_OP_ALL", "AEXPR_DISTINCT", "AEXPR_NOT_DISTINCT",
                   "AEXPR_NULLIF", "AEXPR_IN", "AEXPR_LIKE", "AEXPR_ILIKE", "AEXPR_SIMILAR")
# pg_proc, pg_operator: objects with smaller ids are built into PostgreSQL (FirstNormalObjectId).
_FIRST_DEFINED_OID = 16384
_READ_ONLY_FORMS = "one SELECT (or WITH ... SELECT, VALUES, TABLE) statement"


def short_query(query):
    """The query on one line, cut to 80 characters, for messages."""
    query = " ".join(query.split())
    return query if len(query) <= 80 else query[:77] + "..."


def refused_reason(function_name):
    """Why ingest refuses to call `function_name` (any case, without its schema), or None."""
    name = function_name.lower()
    if not _REFUSED_PATTERN.fullmatch(name):
        return None
    return next(reason for pattern, reason in REFUSED_FUNCTIONS.items()
                if (name.startswith(pattern[:-1]) if pattern.endswith("*") else name == pattern))


class QueryCalls:
    """The functions and operators a checked query names: sets of (schema or None, name)."""

    def __init__(self, functions, operators):
        self.functions = frozenset(functions)
        self.operators = frozenset(operators)


def _names(strings):
    """(schema or None, name) from a parse tree's list of String nodes."""
    parts = [string.sval for string in strings]
    return (parts[-2] if len(parts) > 1 else None, parts[-1])


def _shown(schema, name):
    return f"{schema}.{name}" if schema else name


def check_query(query, flag="--query"):
    """Refuses, with one line naming `flag`, a query that is not one read-only SELECT or that calls a function
    that acts (see the module's docstring); returns the functions and operators it calls, for
    `check_defined_calls`."""
    from pglast import ast, parse_sql
    from pglast.parser import ParseError
    from pglast.visitors import Visitor

    shown = short_query(query)
    try:
        statements = parse_sql(query)
    except ParseError as error:
        raise StageError(f"{flag} {shown!r} is not valid PostgreSQL ({error}): give {_READ_ONLY_FORMS}; "
                         "nothing was run.") from None
    if not statements:
        raise StageError(f"{flag} is empty: give a SELECT query.")
    if len(statements) > 1:
        raise StageError(f"{flag} {shown!r} holds {len(statements)} statements: give {_READ_ONLY_FORMS}; "
                         "nothing was run.")

    nodes = []

    class _Every(Visitor):
        def visit(self, ancestors, node):
            nodes.append(node)

    _Every()(statements[0].stmt)
    top = statements[0].stmt
    for node in [top, *nodes]:
        kind = type(node).__name__
        if kind.endswith("Stmt") and kind != "SelectStmt":
            statement = kind[:-4].upper()
            where = "" if node is top else " inside it"
            raise StageError(f"{flag} {shown!r} is not a read-only query: it holds {statement}{where}; give "
                             f"{_READ_ONLY_FORMS}: ingest never writes to the database.")
        if isinstance(node, ast.SelectStmt) and node.intoClause:
            raise StageError(f"{flag} {shown!r} is not a read-only query: SELECT ... INTO creates a table; "
                             f"give {_READ_ONLY_FORMS}: ingest never writes to the database.")
        if isinstance(node, ast.SelectStmt) and node.lockingClause:
            raise StageError(f"{flag} {shown!r} locks the rows it reads (FOR UPDATE or FOR SHARE): leave the "
                             "locking clause out; ingest only reads.")
    functions, operators = set(), set()
    for node in nodes:
        if isinstance(node, ast.FuncCall):
            schema, name = _names(node.funcname)
            reason = refused_reason(name)
            if reason:
                raise StageError(f"{flag} {shown!r} calls {_shown(schema, name)}(), which {reason}: ingest "
                                 "only runs queries that read; leave the call out (docs/safety.md, \"The database\").")
            functions.add((schema, name))
        elif isinstance(node, ast.A_Expr) and node.kind.name in _OPERATOR_KINDS and node.name:
            operators.add(_names(node.name))
        elif isinstance(node, ast.SubLink) and node.operName:
            operators.add(_names(node.operName))
        elif isinstance(node, ast.ColumnRef) and len(node.fields) > 1 and isinstance(node.fields[-1], ast.String):
            # `row.f` is also f(row) when the row has no column f: a possible call, for check_defined_calls.
            functions.add((None, node.fields[-1].sval))
    return QueryCalls(functions, operators)


# The functions and operators defined in the database (not built in) that the query's names may reach, with
# what their owners declared: VOLATILE ('v') or SECURITY DEFINER. An aggregate acts through its support
# functions, so theirs count too; an operator, through its function.
_DEFINED_CALLS = """
SELECT 'function', n.nspname, p.proname, n.nspname = ANY (current_schemas(true)),
       p.provolatile = 'v' AND p.prokind <> 'a' OR coalesce(support.volatile, false),
       p.prosecdef OR coalesce(support.secdef, false)
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
LEFT JOIN LATERAL (
    SELECT bool_or(f.provolatile = 'v') AS volatile, bool_or(f.prosecdef) AS secdef
    FROM pg_aggregate a JOIN pg_proc f ON f.oid IN (a.aggtransfn, a.aggfinalfn, a.aggcombinefn, a.aggserialfn,
                                                    a.aggdeserialfn, a.aggmtransfn, a.aggminvtransfn, a.aggmfinalfn)
    WHERE a.aggfnoid = p.oid) AS support ON true
WHERE p.oid >= %(first)s AND p.proname = ANY (%(functions)s)
UNION ALL
SELECT 'operator', n.nspname, o.oprname, n.nspname = ANY (current_schemas(true)), f.provolatile = 'v', f.prosecdef
FROM pg_operator o JOIN pg_namespace n ON n.oid = o.oprnamespace JOIN pg_proc f ON f.oid = o.oprcode
WHERE o.oid >= %(first)s AND o.oprname = ANY (%(operators)s)
ORDER BY 1, 2, 3
"""


def check_defined_calls(connection, query, calls):
    """Refuses, with one line, a query whose function or operator names reach one defined in the database
    (not built into PostgreSQL) that is declared VOLATILE or SECURITY DEFINER: it may act, and ingest
    cannot see what it does. Unqualified names count every visible candidate (any overload may be chosen)."""
    names = {"function": calls.functions, "operator": calls.operators}
    if not calls.functions and not calls.operators:
        return
    with connection.cursor() as cursor:
        cursor.execute(_DEFINED_CALLS, {"first": _FIRST_DEFINED_OID,
                                        "functions": sorted({name for _, name in calls.functions}),
                                        "operators": sorted({name for _, name in calls.operators})})
        candidates = cursor.fetchall()
    for kind, schema, name, visible, volatile, security_definer in candidates:
        reached = (schema, name) in names[kind] or (visible and (None, name) in names[kind])
        if not reached or not (volatile or security_definer):
            continue
        called = f"{schema}.{name}()" if kind == "function" else f"the operator {schema}.{name}"
        its = "it" if kind == "function" else "its function"
        if security_definer:
            declared, remedy = "SECURITY DEFINER (it runs with its owner's rights)", f"make {its} SECURITY INVOKER"
        else:
            declared, remedy = "VOLATILE", f"declare {its} STABLE"
        raise StageError(f"--query {short_query(query)!r} calls {called}, which is defined in the database (not "
                         f"built into PostgreSQL) and declared {declared}: it may write or reach outside, which "
                         f"ingest cannot check; if it only reads, its owner can {remedy} (ALTER FUNCTION), or "
                         "put the query in a view.")
