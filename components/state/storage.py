"""Locations outside the pipeline root: local paths, `gs://` and `s3://` URIs.

The data landing zone, the serving sample, the curated schema, the user module, the statistics store
and the serving root may each be a local path or a bucket. Bucket operations go through Beam's
FileSystems, the layer Beam's own readers use, so one library serves both; local paths use the OS
directly, so stages that touch no bucket do not pay for importing Beam. Credentials come
from the standard chains and never from the pipeline's parameters: application default credentials
for `gs://` (`STORAGE_EMULATOR_HOST` points at a GCS emulator, as for Google's own client), and
the AWS environment or profile for `s3://`, with `AWS_ENDPOINT_URL` (or the setting `s3_endpoint_url`)
for S3-compatible stores such as SeaweedFS or MinIO.

The run's storage settings (`StorageSettings`: S3 endpoint, region, TLS) are built once from its flags
and reach every stage as a parameter; a stage works with them through a `Storage`, which it passes to the
code that touches files outside its artifacts. Nothing here is set up before use.

Beam retries a failing bucket operation for minutes. So before a stage first touches a bucket,
`check_location` lists it once with the provider's client and no retries: a missing bucket, denied
access, missing credentials or an unreachable endpoint end the stage in seconds with one line naming
the URI.
"""
import contextlib
import dataclasses
import json
import os
import re
import shutil
import tempfile
import warnings

from components.errors import StageError
from components.platform.flags import split_flags

GCS_SCHEME = "gs://"
S3_SCHEME = "s3://"
_REMOTE_SCHEMES = (GCS_SCHEME, S3_SCHEME)
_CHECK_TIMEOUT_SECONDS = 20
# Files are copied as they are: Beam would otherwise (de)compress a `.gz` name on the way.
_BYTE_EXACT = "uncompressed"
# Files are streamed in pieces of this size, never read whole (a model's variables can be gigabytes).
_STREAM_CHUNK_BYTES = 8 * 1024 * 1024
# Beam options that carry secrets (S3 keys, Azure's connection string), and any option named like one.
_CREDENTIAL_FLAGS = ("--s3_access_key_id", "--s3_secret_access_key", "--s3_session_token", "--azure_connection_string")
_CREDENTIAL_NAME = re.compile(r"secret|password|passwd|token|access_key|connection_string|credential", re.I)
# A URL with a password in it (a database URL such as postgresql://user:password@host/db), the password
# percent-encoded or not (an AWS secret key often holds a `/`).
_URL_WITH_PASSWORD = re.compile(r"[a-z][a-z0-9+.-]*://[^/@\s:]+:[^@\s]+@", re.I)


def is_remote(path):
    return str(path).startswith(_REMOTE_SCHEMES)


def refuse_credentials(beam_args, flag="--beam-args"):
    """Raises StageError if the Beam arguments hold a credential; the line never shows its value.

    Credentials passed as pipeline parameters would be in the compiled spec, the run's parameters, the
    logs and KFP's database. The stages take them from their environment or the workload's identity.
    A flag is read as Beam reads it: `--s3_sec=...`, `--s3_sec ...` and `-s3_sec=...` (passed on by name to
    the workers, which read it again) all set Beam's secret key (see `credential_option`).
    """
    args = split_flags(beam_args, flag)
    for arg in args:
        if _URL_WITH_PASSWORD.search(arg):
            raise StageError(
                f"{flag} holds a URL with a password ({arg.split('=', 1)[0] if arg.startswith('-') else 'a value'}): "
                "a database URL reaches ingest and Beam's workers only through their environment "
                "(LIVING_PIPELINE_DATABASE_URL, from a Kubernetes secret on a cluster), never the job's options.")
    for name in (arg.split("=", 1)[0] for arg in args if arg.startswith("-") and arg.strip("-")):
        credential = credential_option(name)
        if credential:
            read_as = "" if credential == name else f", which Beam reads as {credential}"
            raise StageError(
                f"{flag} holds {name}{read_as}, a credential: credentials are never pipeline parameters (they "
                "would be in the compiled spec, the run's parameters and logs); give the stages AWS_ACCESS_KEY_ID, "
                "AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN (or GOOGLE_APPLICATION_CREDENTIALS) as environment "
                "variables, on KFP from a Kubernetes secret, or use the workload's identity.")


def refuse_password_in_url(value, flag=""):
    """Raises StageError if `value` holds a URL with a password (http://KEY:SECRET@host); never shows it."""
    if _URL_WITH_PASSWORD.search(value):
        raise StageError(f"{flag + ': ' if flag else ''}a URL with a password in it is a credential, and credentials "
                         "are never pipeline parameters or settings (they would be in the compiled spec, the run's "
                         "parameters and logs): give the URL without it, and the stages AWS_ACCESS_KEY_ID and "
                         "AWS_SECRET_ACCESS_KEY as environment variables (on KFP from a Kubernetes secret: "
                         "--kfp-s3-secret).")


def credential_option(name):
    """The credential option the flag named `name` sets ('' for none): `name` itself when it is named like a
    credential, else the credential option Beam sets from it (an abbreviation such as `--s3_sec`, one dash
    or three), as Beam's own parsers read it (components.platform.beam_options)."""
    if name.lower() in _CREDENTIAL_FLAGS or _CREDENTIAL_NAME.search(name):
        return name
    with warnings.catch_warnings():  # Beam's Google clients warn about this Python at import, on the terminal
        warnings.filterwarnings("ignore", message="You are using a Python version", category=FutureWarning)
        from components.platform.beam_options import options_set_by  # imports Beam: only when there are flags

    return next((f"--{option}" for option in sorted(options_set_by(name)) if _CREDENTIAL_NAME.search(option)), "")


def _share_botocore_models():
    """Beam's S3 file system makes a boto3 session for every operation, and each new session reads and parses
    botocore's JSON models and endpoints again (about 0.3 s of CPU, most of a small publish's time): sessions in
    this process share one loader, which caches those files as it would for one session's clients."""
    import botocore.loaders
    import botocore.session

    if getattr(botocore.session.create_loader, "shared", False):
        return
    loaders, create_loader = {}, botocore.loaders.create_loader

    def shared_loader(search_path_string=None):
        if search_path_string not in loaders:
            loaders[search_path_string] = create_loader(search_path_string)
        return loaders[search_path_string]
    shared_loader.shared = True
    botocore.session.create_loader = shared_loader


def _use_anonymous_gcs_credentials():
    """A GCS emulator takes no credentials; without this, Beam spends ~20 s retrying to find some."""
    from apache_beam.internal.gcp import auth

    credentials = getattr(auth, "_Credentials", None)
    if credentials is not None and hasattr(credentials, "_credentials_init"):
        with credentials._credentials_lock:
            credentials._credentials, credentials._credentials_init = None, True


def join(base, *parts):
    if is_remote(base):
        return "/".join([base.rstrip("/"), *(part.strip("/") for part in parts)])
    return os.path.join(base, *parts)


def _bucket_and_key(uri):
    scheme = GCS_SCHEME if uri.startswith(GCS_SCHEME) else S3_SCHEME
    bucket, _, key = uri[len(scheme):].partition("/")
    return scheme, bucket, key


def _literal_prefix(key):
    cut = min((key.find(char) for char in "*?[{" if char in key), default=len(key))
    return key[:cut]


def _classified(flag, uri, bucket, code, status, error):
    if status == 404 or code in ("NoSuchBucket", "NotFound"):
        return StageError(f"{flag} {uri!r}: bucket {bucket!r} does not exist: create it or correct the URI.")
    if status in (401, 403) or code in ("AccessDenied", "Forbidden", "InvalidAccessKeyId",
                                        "SignatureDoesNotMatch", "Unauthorized"):
        return StageError(f"{flag} {uri!r}: access denied to bucket {bucket!r} ({code or status}): "
                          "check the credentials and their permissions on the bucket.")
    return StageError(f"{flag} {uri!r}: the storage service answered {code or status}: {error}")


def _failure(error, uri, flag):
    """A StageError naming `uri` for an exception from Beam's FileSystems."""
    from apache_beam.io.filesystem import BeamIOError

    while isinstance(error, BeamIOError) and error.exception_details:
        error = next(iter(error.exception_details.values()))
    if isinstance(error, FileNotFoundError) or getattr(error, "code", None) == 404:
        return StageError(f"{flag} {uri!r} does not exist: check the path.")
    status = getattr(error, "code", None)
    if status in (401, 403, "AccessDenied", "Forbidden"):  # Beam's S3 client gives S3's code, not the status
        return StageError(f"{flag} {uri!r}: access denied: check the credentials and their permissions.")
    return StageError(f"{flag} {uri!r}: {type(error).__name__}: {error}")


@dataclasses.dataclass(frozen=True)
class StorageSettings:
    """How the stages reach buckets: the run's storage settings, built once from its flags and passed to
    every stage as one pipeline parameter (`storage_settings`, this as JSON).

    Credentials are never settings: each stage takes them from its own environment, as the providers'
    standard chains do (application default credentials for `gs://`, none with `STORAGE_EMULATOR_HOST`;
    the AWS variables or profile for `s3://`). So the settings hold nothing secret and may be in the
    compiled spec, the run's parameters and its logs.
    """
    s3_endpoint_url: str = ""  # an S3-compatible store (SeaweedFS, MinIO); empty: AWS_ENDPOINT_URL, else AWS
    s3_region_name: str = ""  # empty: AWS_REGION, AWS_DEFAULT_REGION or the profile's
    s3_verify: str = ""  # Beam's --s3_verify: whether (or with which CA bundle) to verify TLS certificates
    s3_disable_ssl: bool = False

    def __post_init__(self):
        for name, value in dataclasses.asdict(self).items():
            if isinstance(value, str):
                refuse_password_in_url(value, f"the storage setting {name} (--s3-endpoint-url, --s3-region, "
                                              "--param storage_settings)")

    @classmethod
    def from_json(cls, text, flag="storage_settings"):
        """The settings a JSON object names ('' for none); raises StageError on anything else."""
        try:
            values = json.loads(text) if text.strip() else {}
        except ValueError as error:
            raise StageError(f"{flag} {text!r} is not JSON ({error}): give an object such as "
                             '{"s3_endpoint_url": "http://minio:9000"}.') from None
        known = [field.name for field in dataclasses.fields(cls)]
        unknown = sorted(set(values) - set(known)) if isinstance(values, dict) else None
        if unknown is None or unknown:
            raise StageError(f"{flag} {text!r}: the storage settings are a JSON object with the keys "
                             f"{', '.join(known)}" + (f"; {', '.join(unknown)} is not one" if unknown else "")
                             + ". Credentials come from the stages' environment, never from settings.")
        return cls(**values)

    def to_json(self):
        """The settings that differ from the defaults, as a JSON object ('' when none do)."""
        changed = {name: value for name, value in dataclasses.asdict(self).items()
                   if value != getattr(StorageSettings, name)}
        return json.dumps(changed, sort_keys=True) if changed else ""

    def beam_flags(self):
        """The settings as Beam options: Beam's FileSystems, readers and writers take them so."""
        flags = [f"--{name}={value}" for name, value in dataclasses.asdict(self).items()
                 if value and name != "s3_disable_ssl"]
        return flags + (["--s3_disable_ssl"] if self.s3_disable_ssl else [])

    def taking(self, beam_flags, flag="--beam-args"):
        """(settings, the other flags): the storage options among Beam flags (e.g. `--s3_endpoint_url=...` in
        `--beam-args`) moved onto these settings; a setting given two ways with two values is refused."""
        values = dataclasses.asdict(self)
        rest = []
        for beam_flag in beam_flags:
            name, has_value, value = beam_flag.removeprefix("--").partition("=")
            if not beam_flag.startswith("--") or name not in values:
                rest.append(beam_flag)
                continue
            if name == "s3_disable_ssl":
                value = not has_value or value.lower() not in ("false", "0", "")
            if values[name] not in (value, getattr(StorageSettings, name)):
                raise StageError(f"{flag} sets --{name}={value}, and the storage settings already say "
                                 f"{values[name]!r}: give it once.")
            values[name] = value
        return StorageSettings(**values), rest


class Storage:
    """Files in local folders and buckets, reached with one run's StorageSettings.

    Local paths use the OS directly. Bucket operations go through Beam's FileSystems, given these
    settings on each use; each bucket is checked once (`check_location`) before its first operation.
    """

    def __init__(self, settings=StorageSettings()):
        self.settings = settings
        self._pipeline_options = None
        self._checked = set()

    @classmethod
    def from_json(cls, settings_json):
        """Storage with the settings of a stage's `storage_settings` parameter."""
        return cls(StorageSettings.from_json(settings_json))

    def _filesystems(self):
        """Beam's FileSystems, set up with these settings."""
        from apache_beam.io.filesystems import FileSystems

        if self._pipeline_options is None:
            from components.platform.beam_options import pipeline_options

            self._pipeline_options = pipeline_options(self.settings.beam_flags())
            _share_botocore_models()
            if os.environ.get("STORAGE_EMULATOR_HOST"):
                _use_anonymous_gcs_credentials()
        FileSystems.set_options(self._pipeline_options)
        return FileSystems

    def _options(self):
        self._filesystems()
        return self._pipeline_options

    def check_location(self, uri, flag):
        """Lists the bucket of `uri` once (no retries); raises StageError naming `flag` and `uri` on failure."""
        if not is_remote(uri):
            return
        scheme, bucket, key = _bucket_and_key(uri)
        if not bucket:
            raise StageError(f"{flag} {uri!r} names no bucket: write it as {scheme}BUCKET/PATH.")
        if (scheme, bucket) in self._checked:
            return
        if scheme == S3_SCHEME:
            self._check_s3_bucket(uri, flag, bucket, _literal_prefix(key))
        else:
            self._check_gcs_bucket(uri, flag, bucket, _literal_prefix(key))
        self._checked.add((scheme, bucket))

    def _s3_client(self, config=None):
        """boto3's S3 client with the run's settings (Beam's S3 options), as Beam's own S3 file system has them."""
        import boto3
        from apache_beam.options.pipeline_options import S3Options

        s3_options = self._options().view_as(S3Options)
        verify = s3_options.s3_verify
        return boto3.session.Session().client(
            "s3", endpoint_url=s3_options.s3_endpoint_url, region_name=s3_options.s3_region_name,
            use_ssl=not s3_options.s3_disable_ssl, verify=None if verify in (None, "") else verify, config=config)

    def _write_empty_s3_object(self, uri, flag):
        """An empty object in S3: Beam's S3 writer always completes a multipart upload, and S3 (SeaweedFS, MinIO
        and AWS alike) refuses to complete one without parts."""
        import botocore.exceptions

        self.check_location(uri, flag)
        _, bucket, key = _bucket_and_key(uri)
        try:
            self._s3_client().put_object(Bucket=bucket, Key=key, Body=b"")
        except botocore.exceptions.ClientError as error:
            raise _classified(flag, uri, bucket, error.response.get("Error", {}).get("Code", ""),
                              error.response.get("ResponseMetadata", {}).get("HTTPStatusCode"), error) from None

    def _check_s3_bucket(self, uri, flag, bucket, prefix):
        import botocore.config
        import botocore.exceptions

        client = self._s3_client(botocore.config.Config(retries={"max_attempts": 1, "mode": "standard"},
                                                        connect_timeout=_CHECK_TIMEOUT_SECONDS,
                                                        read_timeout=_CHECK_TIMEOUT_SECONDS))
        try:
            client.list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=1)
        except botocore.exceptions.NoCredentialsError:
            raise StageError(f"{flag} {uri!r}: no AWS credentials found: set AWS_ACCESS_KEY_ID and "
                             "AWS_SECRET_ACCESS_KEY, or AWS_PROFILE.") from None
        except (botocore.exceptions.EndpointConnectionError, botocore.exceptions.ConnectTimeoutError,
                botocore.exceptions.ReadTimeoutError) as error:
            raise StageError(f"{flag} {uri!r}: cannot reach the S3 endpoint ({error}): check the endpoint "
                             "(--s3-endpoint-url, or AWS_ENDPOINT_URL) and the network.") from None
        except botocore.exceptions.ClientError as error:
            raise _classified(flag, uri, bucket, error.response.get("Error", {}).get("Code", ""),
                              error.response.get("ResponseMetadata", {}).get("HTTPStatusCode"), error) from None

    def _check_gcs_bucket(self, uri, flag, bucket, prefix):
        import google.auth.exceptions
        import requests
        from google.api_core import exceptions as api_exceptions
        from google.cloud import storage

        try:
            client = (storage.Client.create_anonymous_client() if os.environ.get("STORAGE_EMULATOR_HOST")
                      else storage.Client())
            next(iter(client.list_blobs(bucket, prefix=prefix, max_results=1, timeout=_CHECK_TIMEOUT_SECONDS,
                                        retry=None)), None)
        except google.auth.exceptions.DefaultCredentialsError:
            raise StageError(f"{flag} {uri!r}: no Google credentials found: run 'gcloud auth application-default "
                             "login' or set GOOGLE_APPLICATION_CREDENTIALS.") from None
        except requests.exceptions.RequestException as error:
            raise StageError(f"{flag} {uri!r}: cannot reach Google Cloud Storage ({type(error).__name__}): "
                             "check the network (and STORAGE_EMULATOR_HOST if you use an emulator).") from None
        except api_exceptions.GoogleAPICallError as error:
            raise _classified(flag, uri, bucket, type(error).__name__, error.code, error) from None

    @contextlib.contextmanager
    def _reported(self, uri, flag):
        """Beam's FileSystems for an operation on `uri`; its failures become one StageError naming `uri`."""
        from apache_beam.io.filesystem import BeamIOError

        self.check_location(uri, flag)
        try:
            yield self._filesystems()
        except StageError:
            raise
        except (BeamIOError, OSError) as error:
            raise _failure(error, uri, flag) from None
        except Exception as error:  # Beam's S3 and GCS clients raise their own types, not OSError.
            if type(error).__module__.startswith(("apache_beam.io.aws", "google.", "botocore", "requests")):
                raise _failure(error, uri, flag) from None
            raise

    def match(self, pattern, flag):
        """The sorted paths that match a glob (`*`, `?`; `**` crosses folders)."""
        with self._reported(pattern, flag) as filesystems:
            return sorted(metadata.path for metadata in filesystems.match([pattern])[0].metadata_list)

    def exists(self, path, flag):
        if not is_remote(path):
            return os.path.exists(path)
        with self._reported(path, flag) as filesystems:
            return filesystems.exists(path)

    def read_bytes(self, path, flag):
        if not is_remote(path):
            try:
                with open(path, "rb") as source:
                    return source.read()
            except OSError as error:
                raise _failure(error, path, flag) from None
        with self._reported(path, flag) as filesystems, filesystems.open(path, compression_type=_BYTE_EXACT) as source:
            return source.read()

    def read_text(self, path, flag):
        return self.read_bytes(path, flag).decode("utf-8")

    def write_bytes(self, path, data, flag):
        """Writes a whole file (an object store shows the new object only once it is complete)."""
        if not is_remote(path):
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            with open(path, "wb") as sink:
                sink.write(data)
            return
        if not data and path.startswith(S3_SCHEME):
            self._write_empty_s3_object(path, flag)
            return
        with self._reported(path, flag) as filesystems, filesystems.create(path, compression_type=_BYTE_EXACT) as sink:
            sink.write(data)

    def files_under(self, folder, flag, folder_markers=False):
        """Every file below `folder`, as (path, path relative to `folder`). In a bucket, the empty `name/`
        objects that mark folders (TensorFlow's GCS client writes them) are files only with `folder_markers`."""
        prefix = folder.rstrip("/") + "/"
        if not is_remote(folder):
            return sorted((os.path.join(root, name), os.path.relpath(os.path.join(root, name), folder))
                          for root, _, names in os.walk(folder) for name in names)
        return [(path, path[len(prefix):]) for path in self.match(prefix + "**", flag)
                if folder_markers or not path.endswith("/")]

    def copy(self, sources, destinations, flag, uri):
        """Copies files within one store (server-side for buckets)."""
        with self._reported(uri, flag) as filesystems:
            filesystems.copy(sources, destinations)

    def delete(self, paths, flag, uri):
        if paths:
            with self._reported(uri, flag) as filesystems:
                filesystems.delete(paths)

    def folders_holding(self, root, relative, flag):
        """The names of `root`'s subfolders that hold the file `relative` (e.g. `saved_model.pb`)."""
        if is_remote(root):
            prefix = root.rstrip("/") + "/"
            return [path[len(prefix):].split("/", 1)[0] for path in self.match(join(root, "*", relative), flag)]
        if not os.path.isdir(root):
            return []
        return [name for name in os.listdir(root) if os.path.isfile(os.path.join(root, name, relative))]

    def upload_file(self, local_path, uri, flag):
        """Copies one local file to `uri`, streamed: memory stays at a few buffers whatever the file's size."""
        if not is_remote(uri):
            os.makedirs(os.path.dirname(os.path.abspath(uri)), exist_ok=True)
            shutil.copyfile(local_path, uri)
            return
        if uri.startswith(S3_SCHEME) and os.path.getsize(local_path) == 0:
            self._write_empty_s3_object(uri, flag)
            return
        with open(local_path, "rb") as source, self._reported(uri, flag) as filesystems, \
                filesystems.create(uri, compression_type=_BYTE_EXACT) as sink:
            shutil.copyfileobj(source, sink, _STREAM_CHUNK_BYTES)

    def upload_folder(self, local_folder, uri, flag):
        """Copies a local folder's files to `uri`; returns what it wrote, as (URI, path relative to `uri`)."""
        uploaded = []
        for path, relative in self.files_under(local_folder, flag):
            self.upload_file(path, join(uri, relative), flag)
            uploaded.append((join(uri, relative), relative))
        return uploaded

    def download_file(self, uri, local_path, flag):
        """Copies the file at `uri` to a local file, streamed."""
        if not is_remote(uri):
            shutil.copyfile(uri, local_path)
            return
        with self._reported(uri, flag) as filesystems, filesystems.open(uri, compression_type=_BYTE_EXACT) as source, \
                open(local_path, "wb") as sink:
            shutil.copyfileobj(source, sink, _STREAM_CHUNK_BYTES)

    @contextlib.contextmanager
    def local_folder(self, path, flag):
        """A local folder holding the folder `path`'s files: `path` itself when local, else a temporary download."""
        if not is_remote(path):
            yield path
            return
        found = self.files_under(path, flag, folder_markers=True)
        if not found:
            raise StageError(f"{flag} {path!r} does not exist or holds no files: check the path.")
        scratch = tempfile.mkdtemp(prefix="living-pipeline-")
        try:
            for remote, relative in found:
                local = os.path.join(scratch, relative)
                os.makedirs(os.path.dirname(local), exist_ok=True)
                if not remote.endswith("/"):  # a folder marker only makes its folder
                    self.download_file(remote, local, flag)
            yield scratch
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

