"""Mirrors the published versions of a model from a bucket serving root into a local folder, for TF Serving.

TF Serving 2.7 and later cannot read `s3://` (its S3 file system was removed from TensorFlow's core),
so on a cluster whose serving root is in an object store, TF Serving reads a folder of its pod that
this mirror, running beside it, keeps up to date:

    python -m components.tf_serving.model_mirror --serving-root s3://mlpipeline/living-pipeline/serving \\
        --model-name penguins --to /models/penguins [--poll-seconds 10] [--once]

A version counts as published once its `saved_model.pb` is in the bucket (push copies it last), and
only then is it mirrored. Each version is downloaded into a hidden folder (`.incoming-<version>`,
which TF Serving ignores) and renamed into place, so TF Serving sees a whole version or none.
Credentials come from the environment only (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
AWS_ENDPOINT_URL for S3; application default credentials for `gs://`), as for the stages.
"""
import argparse
import os
import shutil
import sys
import time
import warnings

from components.errors import StageError
from components.state.serving_root import is_version_name, model_root, published_versions
from components.state.storage import Storage, join

_FLAG = "--serving-root"
_INCOMING_PREFIX = ".incoming-"


def local_versions(local_root):
    """The versions already mirrored into `local_root`."""
    if not os.path.isdir(local_root):
        return []
    return sorted(int(name) for name in os.listdir(local_root) if is_version_name(name))


def mirror_once(serving_root, model_name, local_root, storage=None):
    """Mirrors the newest published version into `local_root` if it is not there yet; returns the
    versions it mirrored (TF Serving serves the newest, so older ones are not fetched)."""
    storage = storage or Storage()
    published = published_versions(serving_root, model_name, storage)
    if not published or published[-1] in local_versions(local_root):
        return []
    version = published[-1]
    source = join(model_root(serving_root, model_name), str(version))
    incoming = os.path.join(local_root, f"{_INCOMING_PREFIX}{version}")
    shutil.rmtree(incoming, ignore_errors=True)
    for uri, relative in storage.files_under(source, _FLAG):
        local = os.path.join(incoming, relative)
        os.makedirs(os.path.dirname(local), exist_ok=True)
        storage.download_file(uri, local, _FLAG)
    os.rename(incoming, os.path.join(local_root, str(version)))
    return [version]


def run(serving_root, model_name, local_root, poll_seconds, once=False, log=print, storage=None):
    """Mirrors every `poll_seconds`; a failing poll is one line in the log, and the next poll tries again."""
    storage = storage or Storage()
    os.makedirs(local_root, exist_ok=True)
    while True:
        try:
            for version in mirror_once(serving_root, model_name, local_root, storage):
                log(f"Mirrored version {version} of {model_name} from {serving_root} into {local_root}")
        except StageError as error:
            if once:
                raise
            log(f"Not mirrored this time: {error}")
        if once:
            return
        time.sleep(poll_seconds)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m components.tf_serving.model_mirror",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--serving-root", required=True, help="the serving root push publishes to (s3:// or gs://)")
    parser.add_argument("--model-name", required=True, help="the model's name under the serving root")
    parser.add_argument("--to", required=True, metavar="DIR", help="the local folder TF Serving's "
                        "--model_base_path names")
    parser.add_argument("--poll-seconds", type=float, default=10, help="default: %(default)s")
    parser.add_argument("--once", action="store_true", help="mirror once and exit (non-zero on failure)")
    args = parser.parse_args(argv)
    # Google's client libraries (Beam's gcp extra) warn on import about future Python support.
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"google(\.|$)")
    try:
        run(args.serving_root, args.model_name, args.to, args.poll_seconds, args.once,
            log=lambda line: print(line, flush=True))
    except StageError as error:
        print(f"Error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
