"""Provenance: where each published version came from, kept inside the version, and the list of versions.

Push writes `assets.extra/provenance.json` into the model before it publishes it (TF Serving ignores
`assets.extra/`, and so do TFMA and Keras), so the record travels with the version wherever it is
copied. It holds the run, the pipeline build, the data, the schema, the module, the training and the
evaluation, and the blessing (see `provenance_record` and docs/training.md). `published_models` reads
the records of a serving root back, newest version first, for `pipeline.py models`.
"""
import datetime
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import shutil
import tempfile

from components import json_values
from components.errors import StageError
from components.state.serving_root import model_root, published_versions
from components.state.storage import Storage, is_remote, join
from components.tf_serving.warmup import WARMUP_FILE, WARMUP_FOLDER

PROVENANCE_FILE = "provenance.json"
RECORD_FORMAT = 1
PACKAGE = "living-pipeline"
_FLAG = "--serving-root"


def sha256_bytes(data):
    return hashlib.sha256(data).hexdigest()


def sha256_file(path):
    with open(path, "rb") as source:
        return sha256_bytes(source.read())


def module_source(module, storage=None):
    """(where the module's source is, its sha256): a .py file path, a bucket URI or an import path."""
    storage = storage or Storage()
    if is_remote(module):
        return module, sha256_bytes(storage.read_bytes(module, "--module"))
    if module.endswith(".py") or os.sep in module:
        return os.path.abspath(module), sha256_file(module)
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.origin or not os.path.isfile(spec.origin):
        raise StageError(f"--module {module!r}: its source file cannot be found to record its digest.")
    return spec.origin, sha256_file(spec.origin)


def package_version():
    try:
        return importlib.metadata.version(PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        return ""


def provenance_record(*, run, build, data, schema_dir, schema_metadata, module, training, decision,
                      hyperparameters=None, custom_config=None, schema_uri="", published_at=None,
                      storage=None):
    """The provenance record of a candidate about to be published (a JSON-ready dict).

    `run`: {"name", "id"} of the pipeline run; `build`: {"spec_sha256", "image", "git_revision"} as compiled
    into the spec; `data`: the ingest stage's metadata plus {"pattern"}; `schema_dir`, `schema_metadata`,
    `schema_uri`: the schema artifact (its local path, metadata and URI); `training`: the train stage's
    metadata; `decision`: the blessing. `hyperparameters` and `custom_config` (dicts or the flags' JSON text)
    are taken as given, not from the training metadata, where KFP turns every number into a float; where the
    tune stage chose the hyperparameters, they are its choice (kept as JSON text in the training metadata).
    """
    storage = storage or Storage()
    from components.stage_logic.schema import SCHEMA_FILE, schema_file

    published_at = published_at or datetime.datetime.now(datetime.timezone.utc)
    # The digest of the module the model was trained with (train records it), else of the module now.
    module_path, module_sha256 = ((training["module_path"], training["module_sha256"])
                                  if training.get("module_sha256") else module_source(module, storage))
    overall = decision.get("overall", {})
    tuned = json.loads(training["tuned_hyperparameters_json"]) if training.get("tuned_hyperparameters_json") else None
    return {
        "format": RECORD_FORMAT,
        "run": {"name": run.get("name", ""), "id": run.get("id", ""),
                "published_at": published_at.isoformat(timespec="seconds")},
        "pipeline": {"spec_sha256": build.get("spec_sha256", ""), "image": build.get("image", ""),
                     "git_revision": build.get("git_revision", ""), "package": PACKAGE,
                     "package_version": package_version()},
        "data": {"pattern": data.get("pattern", ""), "source": data.get("source", ""),
                 "query": data.get("query", ""), "files": list(data.get("files") or []),
                 "span": int(data.get("span") or 0), "version": data.get("version"),
                 "split_mode": data.get("split_mode", ""),
                 "row_counts": {split: int(count) for split, count in (data.get("row_counts") or {}).items()}},
        "schema": {"sha256": sha256_file(schema_file(schema_dir)),
                   "location": join(schema_uri, SCHEMA_FILE) if schema_uri else schema_file(schema_dir),
                   "origin": schema_metadata.get("origin", ""), "description": schema_metadata.get("description", ""),
                   "version": int(schema_metadata.get("schema_version") or 0)},
        "module": {"name": module, "path": module_path, "sha256": module_sha256,
                   "contract": training.get("contract", ""), "label_key": training.get("label_key", ""),
                   "problem_type": training.get("problem_type", "")},
        "training": {"hyperparameters": (tuned["values"] if tuned else
                                         _as_dict(hyperparameters, training.get("hyperparameters"))),
                     # keras-tuner's config of the hyperparameters the tune stage chose, or null: not tuned.
                     "tuned_hyperparameters": tuned,
                     "custom_config": _as_dict(custom_config, training.get("custom_config")),
                     "metrics": training.get("final") or {}},
        "evaluation": {"metric": decision.get("metric", ""), "threshold": decision.get("threshold"),
                       "tolerance": decision.get("tolerance"),
                       "overall": overall.get("candidate", {}),
                       "baseline_overall": overall.get("baseline", {}),
                       "slices": decision.get("slices", {}),
                       # Metrics that are undefined (None above), each with its slice, model and reason.
                       "undefined": list(decision.get("undefined", []))},
        "blessing": {"blessed": bool(decision.get("blessed")), "reasons": list(decision.get("reasons", [])),
                     "baseline_version": int(decision.get("baseline_version") or 0),
                     "baseline": decision.get("baseline", "")},
        "serving": {"signature": "serving_default", "input": training.get("serving_input", ""),
                    "prediction_key": training.get("prediction_key", ""),
                    "warmup_requests": f"{WARMUP_FOLDER}/{WARMUP_FILE}"},
    }


def _as_dict(given, fallback):
    if isinstance(given, str):
        return json.loads(given) if given.strip() else {}
    return dict(given if given is not None else (fallback or {}))


class model_with_provenance:
    """A context manager: a copy of `model_dir` with the record in `assets.extra/`, removed afterwards (the
    model artifact itself is an input and stays as it is)."""

    def __init__(self, model_dir, record):
        self.model_dir, self.record = model_dir, record

    def __enter__(self):
        self._scratch = tempfile.mkdtemp(prefix="living-pipeline-push-")
        copy = os.path.join(self._scratch, "model")
        shutil.copytree(self.model_dir, copy)
        os.makedirs(os.path.join(copy, WARMUP_FOLDER), exist_ok=True)
        with open(os.path.join(copy, WARMUP_FOLDER, PROVENANCE_FILE), "w") as sink:
            json_values.dump(json_values.finite(self.record), sink, indent=2, sort_keys=True)
        return copy

    def __exit__(self, *exc):
        shutil.rmtree(self._scratch, ignore_errors=True)
        return False


def check_same_prediction(baseline_dir, baseline_version, label_key, problem_type, module, storage=None):
    """Stops with one line when the serving model `baseline_dir` (local) predicts another label or another
    kind of target than the candidate: the two cannot be compared, and the name is shared by mistake."""
    record = read_provenance(baseline_dir, storage) or {}
    kept = record.get("module", {})
    theirs = (kept.get("label_key"), kept.get("problem_type"))
    if not all(theirs) or theirs == (label_key, problem_type):
        return
    raise StageError(
        f"The serving model's version {baseline_version} predicts {theirs[0]!r} ({theirs[1]}), but --module "
        f"{module!r} predicts {label_key!r} ({problem_type}): they are different models under one name. Give this "
        "one its own --model-name (or a MODEL_NAME in its module).")


def read_provenance(version_path, storage=None):
    """The provenance record of a published version (a local path or URI), or None when it has none."""
    storage = storage or Storage()
    path = join(version_path, WARMUP_FOLDER, PROVENANCE_FILE)
    if not storage.exists(path, _FLAG):
        return None
    try:
        return json.loads(storage.read_text(path, _FLAG))
    except ValueError:
        return None


def published_models(serving_root, model_name, storage=None):
    """[{version, path, record}] of a model's published versions, newest first (record None: none kept)."""
    storage = storage or Storage()
    root = model_root(serving_root, model_name)
    rows = []
    for version in reversed(published_versions(serving_root, model_name, storage)):
        path = join(root, str(version))
        rows.append({"version": version, "path": path, "record": read_provenance(path, storage)})
    return rows


def _summary(row):
    record = row["record"] or {}
    evaluation, blessing = record.get("evaluation", {}), record.get("blessing", {})
    metric = evaluation.get("metric", "")
    value = evaluation.get("overall", {}).get(metric)
    reasons = blessing.get("reasons") or []
    return {
        "version": row["version"],
        "published_at": record.get("run", {}).get("published_at", ""),
        "span": record.get("data", {}).get("span", ""),
        "metric": (f"{metric} {value:.4f}" if value is not None else f"{metric} undefined") if metric else "",
        "baseline": (f"version {blessing['baseline_version']}" if blessing.get("baseline_version")
                     else ("none" if record else "")),
        "reason": "; ".join(reasons) if reasons else ("no provenance record" if not record else ""),
    }


def models_table(rows):
    """The versions as a text table: version, time, span, key metric, baseline and the blessing's reasons."""
    header = ("version", "published (UTC)", "span", "metric", "baseline", "blessing reason")
    lines = [header] + [tuple(str(value) for value in _summary(row).values()) for row in rows]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header) - 1)]
    return "\n".join("  ".join([cell.ljust(width) for cell, width in zip(line, widths)] + [line[-1]]).rstrip()
                     for line in lines)
