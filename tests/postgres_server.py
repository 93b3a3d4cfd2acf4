"""A real PostgreSQL server for the tests, started on loopback in a temporary folder and stopped after.

It uses the server binaries of Debian's `postgresql` package (`.ci/run` installs it), which include its
contrib extensions (dblink). PostgreSQL refuses to run as root, so when the tests run as root (as in CI)
the server runs as the `postgres` user the package creates. Password authentication is on, so the tests
can check that a password never shows. `USER` is the superuser that owns everything; `create_reader`
adds the read-only role docs/sources.md tells users to create, with that page's own SQL.
"""
import contextlib
import glob
import os
import pwd
import re
import shutil
import subprocess
import tempfile

import psycopg

from helpers import REPO, free_port

USER = "living"
PASSWORD = "s3cret-Pa55word"
DATABASE = "postgres"
READER = "pipeline_reader"
READER_PASSWORD = "r3ader-Pa55word"


def _binary(name):
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=lambda path: int(path.split("/")[4]))
    found = candidates[-1] if candidates else shutil.which(name)
    if not found:
        raise RuntimeError(f"PostgreSQL's {name} is not installed: apt-get install postgresql (see .ci/run).")
    return found


def _run(command, log=None):
    """Runs a server command; a failure raises with what the command (and the server log) said."""
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode:
        server_log = open(log).read()[-2000:] if log and os.path.exists(log) else ""
        raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}): {done.stderr.strip()} {server_log}")


@contextlib.contextmanager
def running_server():
    """Yields the URL of a fresh server (user `living`, password auth, database `postgres`)."""
    root = tempfile.mkdtemp(prefix="living-pipeline-postgres-")
    as_user = []
    if os.geteuid() == 0:
        account = pwd.getpwnam("postgres")
        os.chown(root, account.pw_uid, account.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    data, password_file, log = (os.path.join(root, name) for name in ("data", "password", "server.log"))
    with open(password_file, "w") as sink:
        sink.write(PASSWORD)
    if as_user:
        os.chown(password_file, account.pw_uid, account.pw_gid)
    port = free_port()
    _run([*as_user, _binary("initdb"), "-D", data, "-U", USER, f"--pwfile={password_file}",
          "--auth=scram-sha-256", "--encoding=UTF8", "--no-sync"])
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {root} -c fsync=off -c max_connections=30"
    _run([*as_user, _binary("pg_ctl"), "-D", data, "-l", log, "-o", options, "-w", "start"], log)
    try:
        yield f"postgresql://{USER}:{PASSWORD}@127.0.0.1:{port}/{DATABASE}"
    finally:
        subprocess.run([*as_user, _binary("pg_ctl"), "-D", data, "-m", "immediate", "-w", "stop"],
                       capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def read_only_role_sql():
    """The SQL docs/sources.md gives under "A read-only role", for its example names."""
    with open(os.path.join(REPO, "docs", "sources.md")) as page:
        text = page.read()
    section = text[text.index("### A read-only role"):]
    return re.search(r"```sql\n(.*?)```", section, re.S).group(1)


def create_reader(url):
    """Creates the documented read-only role (once) on the server at `url` (the owner's); returns its URL."""
    statements = (read_only_role_sql().replace("'choose-a-password'", f"'{READER_PASSWORD}'")
                  .replace("app_owner", USER).replace(" zoo ", f" {DATABASE} "))
    with psycopg.connect(url, autocommit=True) as connection:
        if not connection.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [READER]).fetchone():
            connection.execute(statements)
    return url.replace(f"{USER}:{PASSWORD}@", f"{READER}:{READER_PASSWORD}@")
