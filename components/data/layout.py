"""Where stages put things inside their artifacts (TFX's layout: one `Split-<name>` folder per split), and
the split names and weights a run asks for (`--split-ratios`, checked here so the command line needs no Beam)."""
import os
import re

from components.errors import StageError

TRAIN = "train"
EVAL = "eval"
# The serving sample's statistics sit beside the span's splits under this name.
SERVING = "serving"
DEFAULT_SPLIT_RATIOS = "train:2,eval:1"
SPLIT_NAME = r"[A-Za-z0-9_]+"
# A row's split comes from 8 bytes of its hash modulo the weights' sum: weights far below 2**64 keep it fair.
MAX_SPLIT_WEIGHT = 1_000_000
_SPLIT_PREFIX = "Split-"


def parse_split_ratios(text, flag="--split-ratios"):
    """'train:2,eval:1' -> [('train', 2), ('eval', 1)]; train and eval must be there. `flag` names the setting."""
    splits = []
    for item in text.split(","):
        name, _, ratio = item.strip().partition(":")
        ratio = ratio.strip()
        if (not re.fullmatch(SPLIT_NAME, name) or not re.fullmatch("[0-9]+", ratio)
                or not 1 <= int(ratio) <= MAX_SPLIT_WEIGHT):
            raise StageError(f"{flag} {text!r}: write it as name:weight pairs, e.g. 'train:2,eval:1' (names of "
                             f"letters, digits and _; whole weights from 1 to {MAX_SPLIT_WEIGHT}, in ASCII digits).")
        splits.append((name, int(ratio)))
    names = [name for name, _ in splits]
    if len(set(names)) != len(names) or not {TRAIN, EVAL} <= set(names):
        raise StageError(f"{flag} {text!r} must name 'train' and 'eval' once each.")
    return splits


def split_dir(artifact_dir, split):
    return os.path.join(artifact_dir, f"{_SPLIT_PREFIX}{split}")


def examples_pattern(artifact_dir, split):
    """The file pattern of a split's gzipped TFRecords."""
    return os.path.join(split_dir(artifact_dir, split), "*.gz")


def split_names(artifact_dir, storage=None):
    """The splits present in an artifact (a local folder, or a bucket URI listed with `storage`), sorted."""
    from components.state.storage import Storage, is_remote

    if is_remote(artifact_dir):
        listed = (storage or Storage()).files_under(artifact_dir, "--beam-temp-root")
        names = {relative.split("/", 1)[0] for _, relative in listed}
    else:
        names = os.listdir(artifact_dir)
    return sorted(name[len(_SPLIT_PREFIX):] for name in names if name.startswith(_SPLIT_PREFIX))


def statistics_file(artifact_dir, split):
    return os.path.join(split_dir(artifact_dir, split), "FeatureStats.pb")
