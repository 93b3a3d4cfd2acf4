"""Every stage's time limit: the `--stage-timeout` flag, the `stage_timeouts` parameter, and the stage's side.

Each stage's default limit is in its row of the stage table (components/stage_table.py, `TIMEOUTS`), which the
command line passes in here: this module imports no stage, so every stage can import it. `--stage-timeout`
takes `STAGE=SECONDS` for one stage or `SECONDS` for every stage (a number of seconds, or with m or h: `90m`,
`2h`), and may be given several times; the later value wins. The pipeline carries every stage's limit as one
string parameter, `ingest=7200,statistics=7200,...`, which each stage reads for itself (a stage the text does
not name, after a hand edit, takes `DEFAULT_TIMEOUT_S`) to start its watchdog
(components/platform/stage_watchdog.py), which ends the stage, with every process it started, at its limit.
On open-source KFP the pods of a KFP-flavoured spec also get the platform's own deadline
(`activeDeadlineSeconds`, `platform_deadline`), a little later than the stage's own limit, so the stage's one
line comes first.
"""
from components.errors import StageError

FLAG = "--stage-timeout"
PARAMETER = "stage_timeouts"
MAX_SECONDS = 7 * 24 * 3600
DEFAULT_TIMEOUT_S = 2 * 3600
# How much later than the stage's own limit the platform ends its pod: time for the watchdog's line.
PLATFORM_GRACE_S = 300
_UNITS = {"s": 1, "m": 60, "h": 3600}


def _seconds(text, shown):
    """`text` (600, 90m, 2h) in whole seconds; StageError naming `shown` (the flag and the setting) otherwise."""
    text = text.strip().lower()
    unit = _UNITS.get(text[-1:], None)
    number = text[:-1] if unit else text
    try:
        seconds = round(float(number) * (unit or 1))
    except (ValueError, OverflowError):
        raise StageError(f"{shown}: give whole seconds (e.g. 600), or minutes or hours (e.g. 10m, 2h), or "
                         "STAGE=SECONDS for one stage.") from None
    if not 0 < seconds <= MAX_SECONDS:
        raise StageError(f"{shown}: a stage's time limit is more than 0 seconds and at most 7 days ({MAX_SECONDS} s).")
    return seconds


def _settings(values, where):
    """(stage or None for every stage, seconds) for each setting in the values of the flag or parameter."""
    for value in values or []:
        for part in [piece.strip() for piece in str(value).split(",") if piece.strip()]:
            stage, separator, number = part.rpartition("=")
            yield (stage.strip() if separator else None), _seconds(number, f"{where} {part!r}"), part


def parse_timeouts(values, defaults, where=FLAG, ignore_others=False):
    """{stage: seconds}: `defaults` (the stage table's TIMEOUTS, or a compiled spec's), with the values of the
    flag (or the parameter's text) over them; StageError for a stage that is not one of them, unless
    `ignore_others` (a stage reading its own limit)."""
    timeouts = dict(defaults)
    for stage, seconds, part in _settings(values, where):
        if stage is None:
            timeouts = dict.fromkeys(timeouts, seconds)
        elif stage in timeouts:
            timeouts[stage] = seconds
        elif not ignore_others:
            raise StageError(f"{where} {part!r}: no stage is called {stage!r}: name one of {', '.join(timeouts)}, "
                             "or give SECONDS alone for every stage.")
    return timeouts


def timeouts_text(timeouts):
    """{stage: seconds} as the pipeline parameter's text, in pipeline order: `ingest=7200,statistics=7200,...`."""
    return ",".join(f"{stage}={seconds}" for stage, seconds in timeouts.items())


def platform_deadline(seconds):
    """The pod deadline (activeDeadlineSeconds) on KFP for a stage whose own limit is `seconds`."""
    return seconds + PLATFORM_GRACE_S


def duration(seconds):
    """`7200 s (2 h)`, `600 s (10 min)`, `45 s`."""
    for size, unit in ((3600, "h"), (60, "min")):
        if seconds >= size and seconds % size == 0:
            return f"{seconds} s ({seconds // size} {unit})"
    return f"{seconds} s"


def expired_message(stage, seconds):
    """The stage's one line when its time limit ends it."""
    return (f"the {stage} stage ran past its time limit of {duration(seconds)} and was stopped, with every process "
            f"it started: if it needs longer, raise the limit ({FLAG} {stage}=SECONDS on run or compile; "
            f"submit --param {PARAMETER}={stage}=SECONDS); otherwise its log shows where it was")


def limit_stage_time(stage, text):
    """Starts this stage process's watchdog with the stage's limit from the `stage_timeouts` parameter's text
    (DEFAULT_TIMEOUT_S when it is not named); returns the limit in seconds."""
    from components.platform.stage_watchdog import watch

    seconds = stage_limit(stage, text)
    watch(seconds, expired_message(stage, seconds))
    return seconds


def describe(timeouts):
    """`ingest 2 h, statistics 2 h, schema 30 min, ...`: stages with the same limit grouped, in pipeline order."""
    groups = {}
    for stage, seconds in timeouts.items():
        groups.setdefault(seconds, []).append(stage)
    return "; ".join(f"{', '.join(stages)} {duration(seconds).split('(')[-1].rstrip(')')}"
                     for seconds, stages in groups.items())


def check_platform_deadlines(timeouts, platform_spec, spec_path):
    """Raises StageError when a stage's limit in `timeouts` runs past the pod deadline compiled into a KFP spec
    (the platform would end the pod first, without the stage's one line)."""
    executors = ((platform_spec or {}).get("platforms", platform_spec or {}).get("kubernetes", {})
                 .get("deploymentSpec", {}).get("executors", {}))
    for stage, seconds in timeouts.items():
        deadline = executors.get(f"exec-{stage}", {}).get("activeDeadlineSeconds")
        if deadline is not None and int(deadline) < platform_deadline(seconds):
            raise StageError(f"--param {PARAMETER}: {stage}={seconds} runs past the pod deadline of {deadline} s "
                             f"compiled into {spec_path}: compile the spec again with {FLAG} {stage}={seconds}, "
                             "or give a shorter limit.")


def stage_limit(stage, text):
    """A stage's limit in seconds from the `stage_timeouts` parameter's text (DEFAULT_TIMEOUT_S if not named)."""
    return parse_timeouts([text], {stage: DEFAULT_TIMEOUT_S}, f"the {PARAMETER} parameter", ignore_others=True)[stage]
