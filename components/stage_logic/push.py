"""Push (TFX's Pusher): a blessed model is published to the serving root; an unblessed one is not.

A blessing holds for the baseline it was decided against: push publishes only while the newest
published version is still the one evaluate compared the candidate with (`baseline_version`, 0 for
none). If another run published in between, nothing is published and the result says why; a rerun
compares the candidate with the new version.

The result says which of three outcomes it was (`outcome`): `published`, `not-blessed`, or
`baseline-changed` (blessed, but a newer version was published or is being published meanwhile; its number is
`newer_version`). The run's summary, summary JSON and exit status follow it.

With a provenance `record` (components.state.provenance), the version is published with the record in its
`assets.extra/provenance.json`; the model artifact itself is left as it is.
"""
import contextlib

from components.state.provenance import PROVENANCE_FILE, model_with_provenance
from components.state.serving_root import BaselineChanged, is_version_name, publish_model
from components.state.storage import Storage
from components.tf_serving.warmup import WARMUP_FOLDER

PUBLISHED, NOT_BLESSED, BASELINE_CHANGED = "published", "not-blessed", "baseline-changed"


def compared_version(blessing):
    """The version evaluate compared the candidate with (0: none), from the blessing's decision."""
    if "baseline_version" in blessing:
        return int(blessing["baseline_version"])
    name = (blessing.get("baseline") or "").rstrip("/").rsplit("/", 1)[-1]
    return int(name) if is_version_name(name) else 0


def push_model(model_dir, blessing, serving_root, model_name, record=None, storage=None):
    """Publishes the model if `blessing` says so (with its provenance `record`); returns what was done and why."""
    storage = storage or Storage()
    if not blessing["blessed"]:
        return {"pushed": False, "outcome": NOT_BLESSED, "version": 0, "path": "",
                "reason": "not blessed: " + "; ".join(blessing["reasons"])}
    staged = model_with_provenance(model_dir, record) if record else contextlib.nullcontext(model_dir)
    try:
        with staged as publishable:
            version, path = publish_model(publishable, serving_root, model_name,
                                          compared_with=compared_version(blessing), storage=storage)
    except BaselineChanged as changed:
        return {"pushed": False, "outcome": BASELINE_CHANGED, "newer_version": changed.version, "version": 0,
                "path": "", "reason": f"blessed, but {changed}"}
    return {"pushed": True, "outcome": PUBLISHED, "version": version, "path": path,
            "provenance": f"{path}/{WARMUP_FOLDER}/{PROVENANCE_FILE}" if record else "",
            "reason": "blessed: " + "; ".join(blessing["reasons"])}


def push_markdown(result, serving_root, model_name):
    if result["pushed"]:
        body = (f"Published version **{result['version']}** of `{model_name}` at `{result['path']}`.\n\n"
                f"Why: {result['reason']}.")
        if result.get("provenance"):
            body += f"\n\nProvenance record: `{result['provenance']}`."
    else:
        body = f"Nothing was published to `{serving_root}/{model_name}`.\n\nWhy: {result['reason']}."
    return f"# Push\n\n{body}\n"
