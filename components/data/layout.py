"""Where stages put things inside their artifacts (TFX's layout: one `Split-<name>` folder per split)."""
import os

TRAIN = "train"
EVAL = "eval"
# The serving sample's statistics sit beside the span's splits under this name.
SERVING = "serving"
DEFAULT_SPLIT_RATIOS = "train:2,eval:1"
_SPLIT_PREFIX = "Split-"


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
