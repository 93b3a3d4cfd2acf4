"""Tune (TFX's Tuner): the user module's `tuner_fn` searches hyperparameters with keras-tuner; train uses the best.

The contract is TFX's: `tuner_fn(fn_args) -> TunerFnResult(tuner=..., fit_kwargs=...)`, where `fn_args` is the
`FnArgs` that `run_fn` gets (components/training/fn_args.py) with `train_steps` = `--tune-steps` (the steps of
each trial), `working_dir` = a scratch folder for the tuner's trials, and `hyperparameters` = the dict from
`--hyperparameters`. This stage caps the tuner at `--tune-trials` trials, runs `tuner.search(**fit_kwargs)`, and
writes keras-tuner's config of the best hyperparameters to `best_hyperparameters.txt` (JSON), as TFX's Tuner
does. Train hands that config to `run_fn` as `fn_args.hyperparameters`, so that
`keras_tuner.HyperParameters.from_config(fn_args.hyperparameters)` works, and its values to `build_model`.

A run tunes only when it asks (`--tune`, the pipeline parameter `tune`); otherwise this stage passes through
without importing TensorFlow, and its artifact and report say that nothing was tuned and why.
"""
import json
import os
import shutil
import tempfile

from components.errors import StageError
from components.json_values import finite, parse_object

BEST_HYPERPARAMETERS_FILE = "best_hyperparameters.txt"
OUTCOME_FILE = "tuning.json"
DEFAULT_TUNE_TRIALS = 10
DEFAULT_TUNE_STEPS = 100


def check_tuning_flags(trials, steps):
    """Stops with one line when --tune-trials or --tune-steps is below one."""
    for flag, value in (("--tune-trials", trials), ("--tune-steps", steps)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise StageError(f"{flag} is {value!r}: give a whole number of at least 1.")


def tune_hyperparameters(transformed_examples_dir, transform_graph_dir, module, output_dir, tune, trials, steps,
                         hyperparameters=None, custom_config=None, schema_dir=None, storage=None):
    """Runs the module's tuner when `tune`; writes the best hyperparameters to `output_dir` and returns what
    happened: {"tuned", "reason"} when it did not tune, else the objective, every trial and the best."""
    check_tuning_flags(trials, steps)
    if not tune:
        from components.training.user_module import declares_name

        defines = declares_name(module, "tuner_fn", storage)
        return {"tuned": False, "reason": "--tune was not given" + (
            " (the module defines tuner_fn)" if defines else "")}
    # The module's models are Keras 2 (tf_keras), as in train: set before TensorFlow is first imported.
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    from components.training.autograph_rules import skip_autograph_for_libraries
    from components.training.fn_args import fn_args_for
    from components.training.user_module import load_user_module

    user_module = load_user_module(module, storage)
    if not callable(getattr(user_module, "tuner_fn", None)):
        raise StageError(f"--tune is given but --module {module!r} defines no tuner_fn: define TFX's "
                         "tuner_fn(fn_args) returning TunerFnResult(tuner=..., fit_kwargs=...), or leave --tune out.")
    skip_autograph_for_libraries()
    working_dir = tempfile.mkdtemp(prefix="living-pipeline-tuner-")
    try:
        fn_args = fn_args_for(transformed_examples_dir, transform_graph_dir, schema_dir, train_steps=steps,
                              hyperparameters=parse_object(hyperparameters, "--hyperparameters"),
                              custom_config=parse_object(custom_config, "--custom-config"),
                              working_dir=working_dir)
        tuner, fit_kwargs = _tuner_and_fit_kwargs(user_module.tuner_fn(fn_args), module)
        oracle = tuner.oracle
        oracle.max_trials = min(oracle.max_trials or trials, trials)
        tuner.search(**fit_kwargs)
        return _outcome(tuner, output_dir, module, steps)
    finally:
        shutil.rmtree(working_dir, ignore_errors=True)


def _tuner_and_fit_kwargs(result, module):
    import keras_tuner

    tuner, fit_kwargs = (getattr(result, "tuner", None), getattr(result, "fit_kwargs", None))
    if not isinstance(tuner, keras_tuner.engine.base_tuner.BaseTuner) or not isinstance(fit_kwargs, dict):
        raise StageError(f"tuner_fn of --module {module!r} returns {type(result).__name__}: return "
                         "TunerFnResult(tuner=<a keras_tuner tuner>, fit_kwargs=<a dict of search's arguments>).")
    return tuner, fit_kwargs


def _outcome(tuner, output_dir, module, steps):
    oracle = tuner.oracle
    best = tuner.get_best_hyperparameters(1)
    trials = [{"trial": trial.trial_id, "status": str(trial.status), "score": trial.score,
               "hyperparameters": dict(trial.hyperparameters.values)}
              for trial in sorted(oracle.trials.values(), key=lambda trial: trial.trial_id)]
    if not best:
        raise StageError(f"tuner_fn of --module {module!r}: none of {len(trials)} trials finished with a score "
                         f"(statuses: {', '.join(sorted({t['status'] for t in trials})) or 'none'}): see the "
                         "stage's log for the trials' errors.")
    config = best[0].get_config()
    os.makedirs(output_dir, exist_ok=True)
    with open(os.path.join(output_dir, BEST_HYPERPARAMETERS_FILE), "w", encoding="utf-8") as sink:
        json.dump(finite(config), sink, sort_keys=True, allow_nan=False)
    best_trial = oracle.get_best_trials(1)[0]
    objective = oracle.objective
    return finite({"tuned": True, "objective": getattr(objective, "name", str(objective)),
                   "direction": getattr(objective, "direction", ""), "max_trials": oracle.max_trials,
                   "steps_per_trial": steps, "best_trial": best_trial.trial_id, "best_score": best_trial.score,
                   "best_values": dict(best[0].values), "trials": trials})


def write_outcome(folder, outcome):
    """Writes what the stage did (tuned or not, and why) beside the best hyperparameters, so that the artifact
    always has a file (object stores keep no empty folders)."""
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, OUTCOME_FILE), "w", encoding="utf-8") as sink:
        json.dump(finite(outcome), sink, sort_keys=True, allow_nan=False)


def read_best_hyperparameters(folder):
    """keras-tuner's config of the best hyperparameters that the tune stage wrote in `folder`, or None."""
    path = os.path.join(folder, BEST_HYPERPARAMETERS_FILE)
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as source:
        return json.load(source)


def tuning_html(outcome):
    """An HTML page: whether the stage tuned (and why not), the objective, and each trial with its score."""
    from components import reports

    if not outcome.get("tuned"):
        return reports.html_page("Tuning", f"<p>Nothing was tuned: {reports.escape(outcome.get('reason', ''))}. "
                                 "Train used the hyperparameters given with --hyperparameters, if any.</p>")
    summary = reports.html_table(["setting", "value"], [
        ("objective", f"{outcome['objective']} ({outcome['direction']})"),
        ("trials (at most)", outcome["max_trials"]), ("steps per trial", outcome["steps_per_trial"]),
        ("best trial", outcome["best_trial"]), ("best score", reports.number(outcome["best_score"])),
        ("best hyperparameters", json.dumps(outcome["best_values"], sort_keys=True))])
    rows = [(trial["trial"], trial["status"], reports.number(trial["score"]) if trial["score"] is not None else
             "none", json.dumps(trial["hyperparameters"], sort_keys=True)) for trial in outcome["trials"]]
    classes = ["decisive" if trial["trial"] == outcome["best_trial"] else "" for trial in outcome["trials"]]
    trials = reports.html_table(["trial", "status", "score", "hyperparameters"], rows, numeric=(2,),
                                row_classes=classes)
    return reports.html_page("Tuning", "<h2>Search</h2>", summary, "<h2>Trials</h2>", trials)
