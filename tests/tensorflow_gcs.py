"""A GCS bucket that TensorFlow's own gs:// file system can use, on loopback, for the tests and benchmarks.

TensorFlow 2.16's built-in GCS client always talks HTTPS to `storage.googleapis.com` and
`www.googleapis.com`; it has no endpoint setting. Its libcurl honours `HTTPS_PROXY`, and TensorFlow reads
`CURL_CA_BUNDLE`, `GOOGLE_AUTH_TOKEN_FOR_TESTING` and `NO_GCE_CHECK`. So this starts, as two processes:

- the GCS emulator (`gcp-storage-emulator`), with one fix: it fails on an empty media upload (TensorFlow
  writes `dir/` markers with no body), which is read here as an empty object;
- a CONNECT proxy that accepts tunnels only to those two host names, terminates TLS with a certificate
  of a CA made for this run, and forwards each request as plain HTTP to the emulator, rewriting the
  resumable-upload `Location: http://` to `https://` and sending each reply with its length.

Both listen on 127.0.0.1 only, serve at most `MAX_CONNECTIONS` tunnels at a time, and end by themselves
when the process that started them ends or after `--lifetime` seconds. `tensorflow_gcs(workdir)` starts
both and yields a `TensorFlowGcs` whose `environment` is what a process (a stage, a Beam worker) needs:
TensorFlow through the proxy, Beam's and Google's Python clients straight to the emulator.

    python tests/tensorflow_gcs.py emulator PORT PARENT_PID LIFETIME
    python tests/tensorflow_gcs.py proxy PORT UPSTREAM_PORT CERT KEY PARENT_PID LIFETIME
"""
import contextlib
import dataclasses
import datetime
import http.client
import os
import socket
import socketserver
import ssl
import subprocess
import sys
import threading
import time

GOOGLE_HOSTS = ("storage.googleapis.com", "www.googleapis.com")
MAX_CONNECTIONS = 64
IDLE_SECONDS = 300
_HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "content-length", "te",
               "trailer", "upgrade", "proxy-authorization"}


@dataclasses.dataclass(frozen=True)
class TensorFlowGcs:
    emulator_host: str  # http://127.0.0.1:PORT, STORAGE_EMULATOR_HOST
    proxy_url: str      # http://127.0.0.1:PORT, HTTPS_PROXY
    ca_path: str        # the test CA's certificate (PEM), CURL_CA_BUNDLE

    def environment(self, ca_path=None):
        """What a process needs to reach the bucket; `ca_path` where the CA file is elsewhere (a container)."""
        return {"STORAGE_EMULATOR_HOST": self.emulator_host, "HTTPS_PROXY": self.proxy_url,
                "https_proxy": self.proxy_url, "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost",
                "CURL_CA_BUNDLE": ca_path or self.ca_path, "GOOGLE_AUTH_TOKEN_FOR_TESTING": "test-token",
                "NO_GCE_CHECK": "true", "GOOGLE_CLOUD_PROJECT": "living-pipeline-tests"}


def make_test_ca(folder):
    """A CA made for this run and a certificate it signs for GOOGLE_HOSTS; returns (ca, cert, key) paths."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    valid_from, valid_until = now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=2)
    ca_key, server_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "living-pipeline test CA")])
    ca_cert = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
               .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(valid_from).not_valid_after(valid_until)
               .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
               .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                            content_commitment=False, key_encipherment=False, data_encipherment=False,
                                            key_agreement=False, encipher_only=False, decipher_only=False),
                              critical=True)
               .sign(ca_key, hashes.SHA256()))
    server_cert = (x509.CertificateBuilder()
                   .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, GOOGLE_HOSTS[0])]))
                   .issuer_name(ca_name).public_key(server_key.public_key())
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(valid_from).not_valid_after(valid_until)
                   .add_extension(x509.SubjectAlternativeName([x509.DNSName(host) for host in GOOGLE_HOSTS]),
                                  critical=False)
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                   .sign(ca_key, hashes.SHA256()))
    paths = tuple(os.path.join(folder, name) for name in ("test-ca.pem", "google-hosts.pem", "google-hosts.key"))
    with open(paths[0], "wb") as sink:
        sink.write(ca_cert.public_bytes(serialization.Encoding.PEM))
    with open(paths[1], "wb") as sink:
        sink.write(server_cert.public_bytes(serialization.Encoding.PEM))
    with open(os.open(paths[2], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as sink:
        sink.write(server_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                            serialization.NoEncryption()))
    return paths


def _end_with(parent_pid, lifetime):
    """Ends this process when its parent has gone or after `lifetime` seconds."""
    def watch():
        deadline = time.monotonic() + lifetime
        while os.getppid() == parent_pid and time.monotonic() < deadline:
            time.sleep(1)
        os._exit(0)

    threading.Thread(target=watch, daemon=True).start()


def run_emulator(port, parent_pid, lifetime):
    """gcp-storage-emulator in memory on 127.0.0.1:port, an empty media upload read as an empty object."""
    from gcp_storage_emulator import __main__ as emulator_main
    from gcp_storage_emulator.handlers import objects

    media_upload = objects._media_upload

    def media_upload_of_empty_bodies(request, response, storage):
        if request.data is None:
            request._data = b""
        return media_upload(request, response, storage)

    objects._media_upload = media_upload_of_empty_bodies
    _end_with(parent_pid, lifetime)
    emulator_main.main(["start", "--host=127.0.0.1", f"--port={port}", "--in-memory"])


class _Tunnel(socketserver.StreamRequestHandler):
    """One CONNECT tunnel: TLS as a Google host, then each request forwarded to the emulator over HTTP."""

    def handle(self):
        if not self.server.slots.acquire(blocking=False):
            self.wfile.write(b"HTTP/1.1 503 Too many tunnels\r\nContent-Length: 0\r\n\r\n")
            return
        try:
            self._tunnel()
        except (OSError, ssl.SSLError, http.client.HTTPException):
            pass  # the client went away; the next tunnel is independent
        finally:
            self.server.slots.release()

    def _tunnel(self):
        self.request.settimeout(IDLE_SECONDS)
        request_line = self.rfile.readline(65537).decode("latin-1").split()
        while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
            pass
        host = request_line[1].rsplit(":", 1)[0] if len(request_line) == 3 else ""
        if request_line[:1] != ["CONNECT"] or host not in GOOGLE_HOSTS:
            self.wfile.write(b"HTTP/1.1 403 Only CONNECT to Google's storage hosts\r\nContent-Length: 0\r\n\r\n")
            return
        self.wfile.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        self.wfile.flush()
        with self.server.tls.wrap_socket(self.request, server_side=True) as tls, \
                tls.makefile("rb") as reader, tls.makefile("wb") as writer:
            upstream = http.client.HTTPConnection("127.0.0.1", self.server.upstream_port, timeout=IDLE_SECONDS)
            try:
                while self._forward_one(reader, writer, upstream):
                    pass
            finally:
                upstream.close()

    def _forward_one(self, reader, writer, upstream):
        line = reader.readline(65537)
        if not line.strip():
            return False
        method, target, _ = line.decode("latin-1").split(" ", 2)
        headers = []
        while (header := reader.readline(65537)) not in (b"\r\n", b"\n", b""):
            name, _, value = header.decode("latin-1").partition(":")
            headers.append((name.strip(), value.strip()))
        lowered = {name.lower(): value for name, value in headers}
        if lowered.get("expect", "").lower() == "100-continue":
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            writer.flush()
        if lowered.get("transfer-encoding", "").lower() == "chunked":
            body = b""
            while size := int(reader.readline(65537).split(b";")[0], 16):
                body += reader.read(size)
                reader.readline()
            while reader.readline(65537) not in (b"\r\n", b"\n", b""):
                pass
        else:
            body = reader.read(int(lowered.get("content-length", 0)))
        upstream.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
        for name, value in headers:
            if name.lower() not in _HOP_BY_HOP and name.lower() != "expect":
                upstream.putheader(name, value)
        upstream.putheader("Content-Length", str(len(body)))
        upstream.endheaders(body)
        reply = upstream.getresponse()
        content = reply.read()
        writer.write(f"HTTP/1.1 {reply.status} {reply.reason}\r\n".encode("latin-1"))
        for name, value in reply.getheaders():
            if name.lower() == "location" and value.startswith("http://"):
                value = "https://" + value[len("http://"):]
            if name.lower() not in _HOP_BY_HOP:
                writer.write(f"{name}: {value}\r\n".encode("latin-1"))
        length = reply.getheader("Content-Length", "0") if method == "HEAD" else str(len(content))
        writer.write(f"Content-Length: {length}\r\n\r\n".encode("latin-1"))
        writer.write(content if method != "HEAD" else b"")
        writer.flush()
        if reply.will_close:
            upstream.close()
        return lowered.get("connection", "").lower() != "close"


class _Proxy(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


def run_proxy(port, upstream_port, cert, key, parent_pid, lifetime):
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    with _Proxy(("127.0.0.1", port), _Tunnel) as server:
        server.tls, server.upstream_port = tls, upstream_port
        server.slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        _end_with(parent_pid, lifetime)
        server.serve_forever()


def _free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_for_port(port, process, log_path, what, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        time.sleep(0.2)
    with open(log_path, errors="replace") as log:
        raise RuntimeError(f"{what} did not start; its log ends with:\n{log.read()[-3000:]}")


@contextlib.contextmanager
def tensorflow_gcs(workdir, lifetime=3 * 3600):
    """Starts the emulator and the proxy (logs in `workdir`); yields a TensorFlowGcs; stops both."""
    ca, cert, key = make_test_ca(workdir)
    emulator_port, proxy_port = _free_port(), _free_port()
    script, pid = os.path.abspath(__file__), str(os.getpid())
    commands = {"emulator": [sys.executable, script, "emulator", str(emulator_port), pid, str(lifetime)],
                "proxy": [sys.executable, script, "proxy", str(proxy_port), str(emulator_port), cert, key, pid,
                          str(lifetime)]}
    processes = []
    try:
        for name, port in (("emulator", emulator_port), ("proxy", proxy_port)):
            log_path = os.path.join(workdir, f"gcs-{name}.log")
            with open(log_path, "w") as log:
                processes.append(subprocess.Popen(commands[name], stdout=log, stderr=subprocess.STDOUT,
                                                  stdin=subprocess.DEVNULL))
            _wait_for_port(port, processes[-1], log_path, f"The GCS {name}")
        yield TensorFlowGcs(f"http://127.0.0.1:{emulator_port}", f"http://127.0.0.1:{proxy_port}", ca)
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=5)
            if process.poll() is None:
                process.kill()


def create_bucket(gcs, name):
    from google.api_core.client_options import ClientOptions
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    client = storage.Client(project="living-pipeline-tests", credentials=AnonymousCredentials(),
                            client_options=ClientOptions(api_endpoint=gcs.emulator_host))
    client.create_bucket(name)


if __name__ == "__main__":
    role, arguments = sys.argv[1], sys.argv[2:]
    if role == "emulator":
        run_emulator(int(arguments[0]), int(arguments[1]), float(arguments[2]))
    elif role == "proxy":
        run_proxy(int(arguments[0]), int(arguments[1]), arguments[2], arguments[3], int(arguments[4]),
                  float(arguments[5]))
    else:
        sys.exit(f"tensorflow_gcs: unknown role {role!r}: emulator or proxy")
