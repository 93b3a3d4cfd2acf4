"""Hostile input, secrets: credentials that reach Beam by another spelling, secrets that a library or a careless
module prints, and arguments that kfp.local rewrote on the way to a stage.

- Beam reads flags as argparse does (an unambiguous abbreviation sets the option; one dash or three is passed
  on by name and read again on the workers): `run`, `submit`, `compile` and every Beam stage refuse each
  spelling that Beam turns into a credential option, in one line that never shows the value.
- A secret in the environment (AWS keys, the database URL's password, PGPASSWORD, the Google credentials
  file, libpq's password file) is redacted from every log, report, summary and provenance record, and
  from what is printed; a real run with a module that prints them shows none of them anywhere.
- A path holding `python3` (a data folder `python3.11-data`) reaches the stages and the provenance record
  as given.
"""
import html
import importlib.util
import inspect
import json
import os
import shutil
import subprocess
import sys
import urllib.parse
import uuid

import pytest
import yaml
from apache_beam.options.pipeline_options import AzureOptions, PipelineOptions, S3Options
from kfp.local import subprocess_task_handler

from components import json_values, reports
from components.errors import StageError
from components.penguins import curated_schema_path
from components.platform.flags import split_flags
from components.platform.local_run import STAGE_LOG, StageLog, python_in_scripts_only
from components.platform.warm_stages import stage_request
from components.redaction import REDACTED, redact
from components.stage_logic.ingest import demo_data_pattern
from components.state.storage import refuse_credentials
from helpers import REPO, free_port
from pipeline_cli import main

PENGUIN_MODULE_FILE = importlib.util.find_spec("components.penguins.module").origin
SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCY-" + uuid.uuid4().hex[:8]
REFUSAL_ADVICE = ("a credential: credentials are never pipeline parameters (they would be in the compiled spec, the "
                  "run's parameters and logs); give the stages AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and "
                  "AWS_SESSION_TOKEN (or GOOGLE_APPLICATION_CREDENTIALS) as environment variables, on KFP from a "
                  "Kubernetes secret, or use the workload's identity.")
# Spellings of the credential options and the option Beam sets from each (an abbreviation in `=` or space form,
# one dash, three dashes), and spellings that set none.
CREDENTIAL_SPELLINGS = [
    (f"--s3_sec={SECRET}", "--s3_secret_access_key"),
    (f"--s3_acc {SECRET}", "--s3_access_key_id"),
    (f"--s3_ses={SECRET}", "--s3_session_token"),
    (f"-s3_sec={SECRET}", "--s3_secret_access_key"),
    (f"---s3_sec={SECRET}", "--s3_secret_access_key"),
    (f"--azure_c={SECRET}", "--azure_connection_string"),
]
SPELLING_IDS = [beam_args.split()[0].split("=")[0] for beam_args, _ in CREDENTIAL_SPELLINGS]  # never the secret
HARMLESS_SPELLINGS = ["--s3_a=x", "--s3_endpoint_url=http://127.0.0.1:8333", "--s3_disable_ssl",
                      "--direct_num_workers=2", "--temp_location=/tmp/beam"]


def credentials_beam_sets(beam_args):
    """The values Beam gives its credential options from these flags: here, and on the workers, which get the
    options as a dictionary (unknown ones kept by name) and read them again."""
    options = PipelineOptions(split_flags(beam_args))
    passed_on = PipelineOptions.from_dictionary(options.get_all_options(drop_default=True,
                                                                        retain_unknown_options=True))
    views = [view.view_as(cls) for view in (options, passed_on) for cls in (S3Options, AzureOptions)]
    names = ("s3_access_key_id", "s3_secret_access_key", "s3_session_token", "azure_connection_string")
    return {getattr(view, name) for view in views for name in names if hasattr(view, name)} - {None}


def beam_stage_names():
    from components.stage_table import STAGES

    return [stage.name for stage in STAGES if "beam_args" in inspect.signature(stage.component).parameters]


@pytest.mark.parametrize("beam_args,option", CREDENTIAL_SPELLINGS, ids=SPELLING_IDS)
def test_every_spelling_beam_reads_as_a_credential_is_refused_without_its_value(beam_args, option):
    assert SECRET in credentials_beam_sets(beam_args), "Beam itself would take the value as a credential"
    name = split_flags(beam_args)[0].split("=")[0]
    with pytest.raises(StageError) as refused:
        refuse_credentials(beam_args)
    assert str(refused.value) == f"--beam-args holds {name}, which Beam reads as {option}, {REFUSAL_ADVICE}"


@pytest.mark.parametrize("beam_args", HARMLESS_SPELLINGS)
def test_spellings_beam_reads_as_no_credential_pass(beam_args):
    assert not credentials_beam_sets(beam_args)
    refuse_credentials(beam_args)


@pytest.mark.parametrize("beam_args,option", CREDENTIAL_SPELLINGS[:4], ids=SPELLING_IDS[:4])
def test_run_refuses_them_before_anything_runs(tmp_path, capsys, beam_args, option):
    code = main(["run", "--pipeline-root", str(tmp_path / "outputs"), "--serving-root", str(tmp_path / "serving"),
                 "--statistics-root", str(tmp_path / "statistics"), f"--beam-args={beam_args}"])
    printed = capsys.readouterr()
    assert code == 2
    assert printed.err.strip().splitlines() == [printed.err.strip()]
    assert printed.err.startswith(f"Error: --beam-args holds {beam_args.split()[0].split('=')[0]}, which Beam "
                                  f"reads as {option}, a credential")
    assert SECRET not in printed.out + printed.err
    assert not os.listdir(tmp_path), "nothing compiled or run"


@pytest.fixture(scope="module")
def spec(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("spec") / "pipeline.yaml")
    assert main(["compile", "--output", path]) == 0
    return path


@pytest.mark.parametrize("beam_args,option", CREDENTIAL_SPELLINGS[:4], ids=SPELLING_IDS[:4])
def test_submit_refuses_them_before_contacting_kfp(spec, capsys, beam_args, option):
    code = main(["submit", "--host", f"http://127.0.0.1:{free_port()}", "--spec", spec,
                 "--param", "serving_root=/mnt/living-pipeline/serving", "--param", f"beam_args={beam_args}"])
    printed = capsys.readouterr()
    assert code == 1
    assert printed.err.strip().splitlines() == [printed.err.strip()]
    assert f"--param beam_args holds {beam_args.split()[0].split('=')[0]}, which Beam reads as {option}" in printed.err
    assert SECRET not in printed.out + printed.err


def test_submit_refuses_a_spec_whose_default_beam_args_hold_a_credential(spec, tmp_path, capsys):
    documents = list(yaml.safe_load_all(open(spec)))
    documents[0]["root"]["inputDefinitions"]["parameters"]["beam_args"]["defaultValue"] = f"--s3_sec={SECRET}"
    edited = tmp_path / "edited.yaml"
    edited.write_text(yaml.safe_dump_all(documents))
    code = main(["submit", "--host", f"http://127.0.0.1:{free_port()}", "--spec", str(edited),
                 "--param", "serving_root=/mnt/living-pipeline/serving"])
    printed = capsys.readouterr()
    assert code == 1
    assert printed.err.startswith(f"Error: the default beam_args of {edited} holds --s3_sec, which Beam reads as "
                                  "--s3_secret_access_key, a credential")
    assert SECRET not in printed.out + printed.err


def test_compile_and_run_refuse_an_endpoint_url_with_keys_in_it(tmp_path, capsys):
    output = tmp_path / "pipeline.yaml"
    with pytest.raises(SystemExit) as exited:
        main(["compile", "--output", str(output), "--kfp-s3-endpoint", f"http://minio:{SECRET}@minio:9000"])
    printed = capsys.readouterr()
    assert exited.value.code == 2 and not output.exists()
    assert ("argument --kfp-s3-endpoint: a URL with a password in it is a credential, and credentials are never "
            "pipeline parameters") in printed.err
    assert SECRET not in printed.out + printed.err

    code = main(["run", "--pipeline-root", str(tmp_path / "outputs"), "--s3-endpoint-url", f"http://k:{SECRET}@s3"])
    printed = capsys.readouterr()
    assert code == 2 and not (tmp_path / "outputs").exists()
    assert printed.err.startswith("Error: the storage setting s3_endpoint_url (--s3-endpoint-url")
    assert SECRET not in printed.out + printed.err


@pytest.mark.slow
def test_every_beam_stage_refuses_them_itself(tmp_path):
    """A spec run from a dashboard never passes the command line: each Beam stage checks its own arguments."""
    driver = f"""
import inspect, json, sys
from kfp import dsl
from components import stages
from pipeline_cli import _pipeline_arguments, parse_args

arguments = _pipeline_arguments(parse_args(["run", "--serving-root", {str(tmp_path / "serving")!r},
                                            "--statistics-root", ""]))
primitive = {{str: "", int: 0, float: 0.0, bool: False}}
for name in {beam_stage_names()!r}:
    stage = getattr(stages, name)
    values = {{}}
    for parameter in inspect.signature(stage).parameters.values():
        if parameter.annotation in primitive:
            values[parameter.name] = arguments.get(parameter.name, primitive[parameter.annotation])
        else:
            values[parameter.name] = dsl.Artifact(name=parameter.name, uri={str(tmp_path)!r} + "/" + parameter.name,
                                                  metadata={{}})
    values["beam_args"] = sys.argv[1]
    try:
        stage(**values)
    except SystemExit:
        pass
"""
    process = subprocess.run([sys.executable, "-c", driver, f"--s3_sec {SECRET}"], capture_output=True, text=True,
                             timeout=600, cwd=REPO)
    errors = [line for line in process.stderr.splitlines() if line.startswith("living-pipeline error: ")]
    expected = json.dumps(f"--beam-args holds --s3_sec, which Beam reads as --s3_secret_access_key, {REFUSAL_ADVICE}")
    assert errors == [f"living-pipeline error: {expected}"] * len(beam_stage_names()), process.stderr[-3000:]
    assert process.returncode == 1
    assert SECRET not in process.stdout + process.stderr


@pytest.fixture
def secret_environment(tmp_path, monkeypatch):
    """Secrets as the clients find them: AWS keys, a database URL and PGPASSWORD, a libpq connection string, a
    Google service account key file and libpq's password file. Returns {what: secret}."""
    secrets = {name: f"{uuid.uuid4().hex}-{name.lower()}" for name in (
        "aws_key_id", "aws_secret", "database", "pgpassword", "conninfo", "private_key_id", "pgpass")}
    secrets["aws_secret"] += "/+&<\"x"  # characters that JSON, HTML and URLs escape
    secrets["private_key_line"] = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC" + uuid.uuid4().hex
    key_file = tmp_path / "service-account.json"
    key_file.write_text(json.dumps({
        "type": "service_account", "client_email": "runner@project.iam.gserviceaccount.com",
        "private_key_id": secrets["private_key_id"],
        "private_key": f"-----BEGIN PRIVATE KEY-----\n{secrets['private_key_line']}\n-----END PRIVATE KEY-----\n"}))
    pgpass = tmp_path / "pgpass"
    pgpass.write_text(f"db.example:5432:*:living:{secrets['pgpass']}\n")
    for name, value in {
        "AWS_ACCESS_KEY_ID": secrets["aws_key_id"], "AWS_SECRET_ACCESS_KEY": secrets["aws_secret"],
        "LIVING_PIPELINE_DATABASE_URL": f"postgresql://living:{secrets['database']}@db.example:5432/sales",
        "PGPASSWORD": secrets["pgpassword"], "REPORTING_DSN": f"host=db user=living password={secrets['conninfo']}",
        "GOOGLE_APPLICATION_CREDENTIALS": str(key_file), "PGPASSFILE": str(pgpass),
    }.items():
        monkeypatch.setenv(name, value)
    return secrets


def leaks(secrets):
    """A text that holds every secret as written, and as JSON, HTML and URLs escape it."""
    forms = [form for secret in secrets.values() for form in (
        secret, json.dumps(secret), html.escape(secret), urllib.parse.quote(secret, safe=""))]
    return "careless debugging: " + " | ".join(forms) + " | rows 344, endpoint http://127.0.0.1:8333"


def assert_no_secret(text, secrets):
    found = [name for name, secret in secrets.items() if secret in text or html.escape(secret) in text
             or json.dumps(secret)[1:-1] in text or urllib.parse.quote(secret, safe="") in text]
    assert not found, f"{found} shown in {text[:500]!r}"


def test_known_secrets_are_redacted_in_every_form_and_nothing_else_changes(secret_environment):
    redacted = redact(leaks(secret_environment))
    assert_no_secret(redacted, secret_environment)
    assert redacted.startswith(f"careless debugging: {REDACTED} | ")
    assert redacted.endswith(" | rows 344, endpoint http://127.0.0.1:8333")
    assert redact("postgresql://reader:elsewhere-secret@host/db and password='an other one'") == (
        f"postgresql://reader:{REDACTED}@host/db and password={REDACTED}")


def test_every_writer_redacts_them(secret_environment, tmp_path, capsys):
    text = leaks(secret_environment)
    json_values.write(str(tmp_path / "summary.json"), {"errors": [text], text: {"nested": (text, 1.5)}})
    reports.write_text(str(tmp_path / "report.html"), f"<p>{html.escape(text)}</p>")
    terminal = tmp_path / "terminal.txt"
    with open(terminal, "w") as stream:
        log = StageLog(stream)
        log.write(f"Executing task 'train'\n{text}\nTask 'train' finished with status SUCCESS\n")
        log.finish(str(tmp_path / "run"))
    for path in [tmp_path / "summary.json", tmp_path / "report.html", terminal, tmp_path / "run" / "train" / STAGE_LOG]:
        assert_no_secret(path.read_text(), secret_environment)
        assert REDACTED in path.read_text(), f"{path} held nothing to redact: the check checked nothing"
    assert json.loads((tmp_path / "summary.json").read_text())["errors"][0].endswith("rows 344, endpoint "
                                                                                      "http://127.0.0.1:8333")

    assert main(["models", "--serving-root", str(tmp_path / secret_environment["pgpassword"])]) == 0
    printed = capsys.readouterr()
    assert printed.out.strip() == f"No published models under {tmp_path}/{REDACTED}."


@pytest.mark.slow
def test_a_stage_never_prints_them_in_its_output_log_records_traceback_or_error(secret_environment, tmp_path):
    stage = ("import logging, sys\n"
             "from components.errors import reported_stage\n"
             "logging.basicConfig()  # a handler made before the stage starts, holding the process's stderr\n"
             "text = open(sys.argv[1]).read()\n"
             "with reported_stage():\n"
             "    print(text)\n"
             "    logging.getLogger('careless').warning(text)\n"
             "    raise RuntimeError(text)\n")
    # The error's one line is cut at 300 characters: here in the middle of a secret, which must not show in part.
    (tmp_path / "leak.txt").write_text("careless debugging: " + "x" * 250 + leaks(secret_environment))
    process = subprocess.run([sys.executable, "-c", stage, str(tmp_path / "leak.txt")], capture_output=True,
                             text=True, timeout=120, cwd=REPO)
    assert process.returncode == 1
    assert_no_secret(process.stdout + process.stderr, secret_environment)
    shown = "x" * 250 + f"careless debugging: {REDACTED}"
    assert process.stdout.startswith(f"careless debugging: {shown}")
    assert f"WARNING:careless:careless debugging: {shown}" in process.stderr
    assert f"RuntimeError: careless debugging: {shown}" in process.stderr
    error = process.stderr.strip().splitlines()[-1]
    assert error.startswith(f'living-pipeline error: "RuntimeError: careless debugging: {shown}')
    assert not [name for name, secret in secret_environment.items() if secret[:8] in error]


def test_kfp_local_rewrote_python3_in_arguments_and_now_only_in_the_scripts(spec):
    """kfp.local puts its interpreter in place of `python3` in the whole command; a stage's command is a shell
    script naming `python3`, the component's source and the arguments (the executor input, with every path)."""
    executor = yaml.safe_load(open(spec))["deploymentSpec"]["executors"]["exec-ingest"]["container"]
    data = "/data/python3.11-data/span-1/penguins.csv"
    command = [*executor["command"], *executor["args"]]
    command[command.index("{{$}}")] = json.dumps({"inputs": {"parameterValues": {"data_pattern": data}}})
    script = next(index for index, element in enumerate(command) if "kfp.dsl.executor_main" in element)

    mangled = subprocess_task_handler.replace_python_executable(command, sys.executable)
    assert data not in mangled[-3], "kfp.local's own rewrite changed the path (the bug this guards against)"

    fixed = python_in_scripts_only(command, sys.executable)
    assert f"{sys.executable} -m kfp.dsl.executor_main" in fixed[script]
    assert stage_request(fixed) is not None, "the warm process still recognises the stage's command"
    assert fixed[:script] + fixed[script + 1:] == command[:script] + command[script + 1:]
    assert json.loads(fixed[-3])["inputs"]["parameterValues"]["data_pattern"] == data


LEAKY_MODULE = '''

import logging as _logging
import os as _os
import sys as _sys

_penguin_model = build_model


def _leak():
    for name in ("AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID", "LIVING_PIPELINE_DATABASE_URL", "PGPASSWORD"):
        print(f"careless debugging: {name}={_os.environ[name]}")
        _logging.getLogger("careless").warning("%s is %s", name, _os.environ[name])
        _sys.stderr.write(_os.environ[name] + "\\n")


def build_model(tf_transform_output, hyperparameters=None):
    _leak()
    return _penguin_model(tf_transform_output, hyperparameters)
'''


@pytest.mark.slow
def test_a_real_run_shows_no_secret_anywhere_and_keeps_python3_paths_intact(tmp_path):
    """Data, module, schema, roots all under folders named python3...; a module that prints the secrets."""
    base = tmp_path / "python3.11-data"
    data = base / "span-1" / "penguins.csv"
    data.parent.mkdir(parents=True)
    shutil.copy(demo_data_pattern(), data)
    module = base / "python3_module" / "leaky_penguins.py"
    module.parent.mkdir()
    module.write_text(open(PENGUIN_MODULE_FILE).read() + LEAKY_MODULE)
    schema = base / "schema.pbtxt"
    shutil.copy(curated_schema_path(), schema)
    database_password = "db-" + uuid.uuid4().hex
    secrets = {"AWS_SECRET_ACCESS_KEY": SECRET, "AWS_ACCESS_KEY_ID": "AKIA" + uuid.uuid4().hex[:16].upper(),
               "PGPASSWORD": "pg-" + uuid.uuid4().hex,
               "LIVING_PIPELINE_DATABASE_URL": f"postgresql://living:{database_password}@db.example/sales"}
    summary = tmp_path / "summary.json"
    process = subprocess.run(
        [sys.executable, os.path.join(REPO, "pipeline.py"), "run", "--data", str(data), "--module", str(module),
         "--schema", str(schema), "--pipeline-root", str(base / "outputs"), "--serving-root", str(base / "serving"),
         "--statistics-root", str(base / "statistics"), "--train-steps", "30", "--summary-json", str(summary)],
        capture_output=True, text=True, timeout=900, cwd=tmp_path, env={**os.environ, **secrets})
    assert process.returncode == 0, process.stdout[-3000:] + process.stderr[-3000:]

    shown = {**secrets, "LIVING_PIPELINE_DATABASE_URL": database_password}
    assert_no_secret(process.stdout + process.stderr, shown)
    assert f"careless debugging: AWS_SECRET_ACCESS_KEY={REDACTED}" in process.stdout, "the module's lines were shown"
    written = [os.path.join(folder, name) for folder, _, names in os.walk(tmp_path) for name in names]
    for path in written:
        with open(path, "rb") as source:
            content = source.read()
        assert not [name for name, secret in shown.items() if secret.encode() in content], path
    train_log = next(path for path in written if path.endswith(os.path.join("train", STAGE_LOG)))
    assert f"careless debugging: PGPASSWORD={REDACTED}" in open(train_log).read()

    provenance = json.loads(next(open(path).read() for path in written if path.endswith("provenance.json")))
    assert provenance["data"]["files"] == [str(data)]
    assert provenance["data"]["pattern"] == str(data)
    assert provenance["module"]["path"] == str(module)
    assert provenance["schema"]["location"].startswith(str(base / "outputs"))
    assert json.loads(summary.read_text())["outputs"]["pushed_model"]["path"] == str(base / "serving" /
                                                                                      "penguins" / "1")
