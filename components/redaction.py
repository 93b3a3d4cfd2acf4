"""Known secret values kept out of everything the project writes: the second wall behind the refusals.

Credentials reach the stages only through their environment (components.state.storage refuses them as
parameters), but a library's message, an error or a careless user module may still print one. `redact`
replaces every known secret value in a text with `[redacted]`, and passwords in URLs
(`scheme://user:PASSWORD@host`) and in `password=...` settings wherever they appear. It is applied where
every writer passes, so a new writer is covered without knowing about it:

- each stage's standard output, standard error and Python log handlers (`redacted_output`, which
  components.errors.reported_stage enters): the stage's log on KFP and Vertex AI;
- the stages' output in a local run, as the terminal shows it and each `stage.log` keeps it
  (components.platform.local_run.StageLog): this also covers what libraries write straight to the
  process's file descriptors, which the first point cannot see;
- every JSON file the project writes (components.json_values: summary JSON, provenance, blessing, ...),
  every report (components.reports.write_text: stage reports and the run report), and everything the
  command line prints (pipeline_cli.main).

The known secret values are those of the environment variables named like a credential (`*SECRET*`,
`*PASSWORD*`, `*TOKEN*`, `*ACCESS_KEY*`, `*CREDENTIAL*`, ...: AWS_SECRET_ACCESS_KEY, AWS_ACCESS_KEY_ID,
AWS_SESSION_TOKEN, PGPASSWORD, ...), the password of any URL or `password=` setting in the environment
(LIVING_PIPELINE_DATABASE_URL), and the secrets in the credential files the clients read: the Google
credentials file (GOOGLE_APPLICATION_CREDENTIALS, or gcloud's application default credentials), libpq's
password file and the AWS shared credentials file. Each also counts as it appears HTML-, JSON- and
URL-escaped, and a secret of several lines (a private key) line by line. Values shorter than
`MIN_SECRET_LENGTH` characters are left alone: they would match ordinary words.
"""
import configparser
import contextlib
import html
import json
import logging
import os
import re
import sys
import urllib.parse

REDACTED = "[redacted]"
MIN_SECRET_LENGTH = 6
_SECRET_VARIABLE = re.compile(r"SECRET|PASSWORD|PASSWD|TOKEN|ACCESS_KEY|CONNECTION_STRING|API_KEY|PRIVATE_KEY|"
                              r"CREDENTIAL", re.I)
# Variables that name a file of credentials: the file's secrets are read, its path is no secret.
_FILE_VARIABLES = ("GOOGLE_APPLICATION_CREDENTIALS", "PGPASSFILE", "AWS_SHARED_CREDENTIALS_FILE")
_URL_PASSWORD = re.compile(r"([a-z][a-z0-9+.-]*://[^/@\s:]*):([^@\s]+)@", re.I)  # a `/` in it unencoded too
_ASSIGNED_PASSWORD = re.compile(r"""(passw(?:or)?d\s*=\s*)('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|[^\s'",;&]+)""", re.I)
_GOOGLE_SECRET_FIELDS = ("private_key", "private_key_id", "client_secret", "refresh_token")
_AWS_SECRET_FIELDS = ("aws_access_key_id", "aws_secret_access_key", "aws_session_token")
_LARGEST_CREDENTIAL_FILE = 1024 * 1024


def _read_small(path):
    """The text of a local file of at most 1 MB, or '' (none there, unreadable, or too large)."""
    try:
        if os.path.getsize(path) > _LARGEST_CREDENTIAL_FILE:
            return ""
        with open(path, encoding="utf-8", errors="replace") as source:
            return source.read()
    except OSError:
        return ""


def _google_secrets(environ):
    gcloud = environ.get("CLOUDSDK_CONFIG") or os.path.expanduser("~/.config/gcloud")
    secrets = []
    for path in (environ.get("GOOGLE_APPLICATION_CREDENTIALS", ""),
                 os.path.join(gcloud, "application_default_credentials.json")):
        try:
            values = json.loads(_read_small(path)) if path else {}
        except ValueError:
            continue
        if isinstance(values, dict):
            secrets.extend(str(values[field]) for field in _GOOGLE_SECRET_FIELDS if values.get(field))
    return secrets


def _pgpass_secrets(environ):
    """The passwords of libpq's password file (host:port:database:user:password lines)."""
    text = _read_small(environ.get("PGPASSFILE") or os.path.expanduser("~/.pgpass"))
    fields = (re.split(r"(?<!\\):", line.strip()) for line in text.splitlines() if not line.startswith("#"))
    return [entry[4].replace("\\:", ":").replace("\\\\", "\\") for entry in fields if len(entry) == 5]


def _aws_secrets(environ):
    parser = configparser.RawConfigParser()
    try:
        parser.read_string(_read_small(environ.get("AWS_SHARED_CREDENTIALS_FILE")
                                       or os.path.expanduser("~/.aws/credentials")))
    except configparser.Error:
        return []
    return [parser[section][field] for section in parser.sections() for field in _AWS_SECRET_FIELDS
            if parser[section].get(field)]


def _passwords_in(value):
    """The passwords of URLs and `password=` settings in `value` (a database URL, a libpq connection string)."""
    found = [match[2] for match in _URL_PASSWORD.finditer(value)]
    found += [match[2].strip("'\"") for match in _ASSIGNED_PASSWORD.finditer(value)]
    return found + [urllib.parse.unquote(password) for password in found]


def secret_values(environ=None):
    """The known secret values (see the module's docstring), each as written and as escaped, longest first."""
    environ = os.environ if environ is None else environ
    secrets = _google_secrets(environ) + _pgpass_secrets(environ) + _aws_secrets(environ)
    for name, value in environ.items():
        if _SECRET_VARIABLE.search(name) and name not in _FILE_VARIABLES:
            secrets.append(value)
        secrets.extend(_passwords_in(value))
    forms = set()
    for secret in secrets:
        for piece in [secret, *secret.splitlines()]:
            piece = piece.strip()
            if len(piece) >= MIN_SECRET_LENGTH and not piece.startswith("-----"):  # a PEM armour line is no secret
                forms.update({piece, html.escape(piece), json.dumps(piece)[1:-1], urllib.parse.quote(piece, safe=""),
                              urllib.parse.quote_plus(piece)})
    return sorted(forms, key=lambda form: (-len(form), form))


class Redactor:
    """Replaces the secret values it was made with, and passwords in URLs and settings, by `[redacted]`."""

    def __init__(self, secrets):
        self._known = re.compile("|".join(map(re.escape, secrets))) if secrets else None

    @classmethod
    def from_environment(cls, environ=None):
        return cls(secret_values(environ))

    def redact(self, text):
        if self._known is not None:
            text = self._known.sub(REDACTED, text)
        text = _URL_PASSWORD.sub(rf"\1:{REDACTED}@", text)
        return _ASSIGNED_PASSWORD.sub(lambda match: match[1] + REDACTED, text)

    def redact_value(self, value):
        """A copy of a JSON-ready value with every string in it (keys too) redacted."""
        if isinstance(value, str):
            return self.redact(value)
        if isinstance(value, dict):
            return {self.redact_value(key): self.redact_value(item) for key, item in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.redact_value(item) for item in value]
        return value


_CACHE = {}


def current():
    """The Redactor of the environment as it is now (kept while the environment and the files are unchanged)."""
    paths = [os.environ.get(name, "") for name in _FILE_VARIABLES]
    stamps = []
    for path in paths:
        try:
            stamps.append(os.stat(path).st_mtime_ns if path else None)
        except OSError:
            stamps.append(None)
    key = (frozenset(os.environ.items()), tuple(stamps))
    if key not in _CACHE:
        _CACHE.clear()
        _CACHE[key] = Redactor.from_environment()
    return _CACHE[key]


def redact(text):
    """`text` with the known secret values of the environment, and passwords, replaced by `[redacted]`."""
    return current().redact(text)


def redact_value(value):
    return current().redact_value(value)


class RedactingStream:
    """A text stream that redacts what is written to it, then writes it to `stream`."""

    def __init__(self, stream, redactor):
        self._stream, self._redactor = stream, redactor

    def write(self, text):
        self._stream.write(self._redactor.redact(text))
        return len(text)

    def writelines(self, lines):
        for line in lines:
            self.write(line)

    def __getattr__(self, name):  # flush, fileno, isatty, encoding, ...: the stream's own
        return getattr(self._stream, name)


def _stream_handlers():
    loggers = [logging.getLogger(), *(logger for logger in logging.Logger.manager.loggerDict.values()
                                      if isinstance(logger, logging.Logger))]
    for handler in (handler for logger in loggers for handler in logger.handlers):
        for candidate in (handler, getattr(handler, "python_handler", None)):  # absl wraps a StreamHandler
            if isinstance(candidate, logging.StreamHandler):
                yield candidate


@contextlib.contextmanager
def redacted_output():
    """While active, sys.stdout, sys.stderr and the log handlers writing to them redact what they write.
    Yields the Redactor."""
    redactor = Redactor.from_environment()
    originals = {id(stream): stream for stream in (sys.stdout, sys.stderr)}
    wrapped = {key: RedactingStream(stream, redactor) for key, stream in originals.items()}
    handlers = [handler for handler in _stream_handlers() if id(handler.stream) in wrapped]
    for handler in handlers:
        handler.setStream(wrapped[id(handler.stream)])
    stdout, stderr = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = wrapped[id(stdout)], wrapped[id(stderr)]
    try:
        yield redactor
    finally:
        sys.stdout, sys.stderr = stdout, stderr
        for handler in handlers:
            if isinstance(handler.stream, RedactingStream):
                handler.setStream(handler.stream._stream)
