"""How Beam's cloudpickle pickles are compressed (components/platform/beam_compression.py): quickly while a DirectRunner
stage pipeline is built and run (`quick_pickles`), as Beam does for any other runner, whose workers need not install
the codec, and outside a stage's pipeline (a user's own pipeline in the same process); each setting reads the other's.
A process that imports the DirectRunner workers' plugin reads the quick pickles (here, and in
tests/test_beam_workers.py, which runs stages in real worker processes)."""
import base64
import bz2
import subprocess
import sys

import cloudpickle
import pytest
from apache_beam.internal import cloudpickle_pickler

from components.platform.beam_options import pipeline_options, quick_pickles

PORTABLE = "--runner=PortableRunner --job_endpoint=localhost:8099"
DATAFLOW = "--runner=DataflowRunner --project=p --region=r --temp_location=gs://b/t"
PAYLOAD = {"a DoFn's state": list(range(1000)), "text": "penguins " * 100}


def pickled_for(beam_args):
    with quick_pickles(pipeline_options(beam_args)):
        return cloudpickle_pickler.dumps(PAYLOAD)


def beams_own_loads(encoded):
    """What Beam's pickler does to unpickle, in a worker that has nothing of ours (a remote runner's)."""
    return cloudpickle.loads(bz2.decompress(base64.b64decode(encoded)))


@pytest.mark.parametrize("beam_args", ["", "--direct_running_mode=multi_processing --direct_num_workers=2",
                                       "--runner=DirectRunner --pickle_library=cloudpickle"])
def test_a_direct_runner_pipeline_compresses_its_pickles_quickly_and_reads_them_back(beam_args):
    encoded = pickled_for(beam_args)
    compressed = base64.b64decode(encoded)
    assert compressed[:1] == b"\x78", "not a zlib stream"
    assert cloudpickle_pickler.loads(encoded) == PAYLOAD
    with pytest.raises(OSError):
        beams_own_loads(encoded)  # which is why the workers of another runner get Beam's own


@pytest.mark.parametrize("beam_args", [PORTABLE, DATAFLOW])
def test_another_runner_gets_beams_own_pickles(beam_args):
    encoded = pickled_for(beam_args)
    assert base64.b64decode(encoded)[:3] == b"BZh"
    assert beams_own_loads(encoded) == PAYLOAD


def test_either_kind_of_pickle_is_read_whichever_setting_is_on():
    quick, beams = pickled_for(""), pickled_for(PORTABLE)
    for beam_args in ("", PORTABLE):
        with quick_pickles(pipeline_options(beam_args)):
            assert cloudpickle_pickler.loads(quick) == cloudpickle_pickler.loads(beams) == PAYLOAD
    assert cloudpickle_pickler.loads(quick) == cloudpickle_pickler.loads(beams) == PAYLOAD


def test_outside_a_stage_pipeline_pickles_are_beams_own_even_after_a_failed_one():
    """A pipeline of the user's own, built in the same process after a stage's (a notebook), goes to its runner's
    workers as Beam pickles it; so does one built after a stage's pipeline failed, and one inside a stage's scope
    for another runner."""
    assert base64.b64decode(cloudpickle_pickler.dumps(PAYLOAD))[:3] == b"BZh"
    with pytest.raises(RuntimeError), quick_pickles(pipeline_options("")):
        assert base64.b64decode(cloudpickle_pickler.dumps(PAYLOAD))[:1] == b"\x78"
        with quick_pickles(pipeline_options(PORTABLE)):
            assert base64.b64decode(cloudpickle_pickler.dumps(PAYLOAD))[:3] == b"BZh"
        assert base64.b64decode(cloudpickle_pickler.dumps(PAYLOAD))[:1] == b"\x78"
        raise RuntimeError("the stage failed")
    assert beams_own_loads(cloudpickle_pickler.dumps(PAYLOAD)) == PAYLOAD


def test_quick_pickles_are_no_larger_than_a_few_times_beams():
    """Level 1 zlib gives up some size for speed; the pickled graph stays in this machine's memory."""
    assert len(pickled_for("")) < 3 * len(pickled_for(PORTABLE))


@pytest.mark.parametrize("plugin", [True, False])
def test_a_fresh_process_reads_the_quick_pickles_once_it_imports_the_workers_plugin(plugin):
    """What a DirectRunner worker process does as it starts (Beam imports `--beam_plugin` first): with the plugin a
    quick pickle is read; without it, Beam's own code cannot read it."""
    from helpers import REPO

    reader = ("import sys; from apache_beam.internal import cloudpickle_pickler; "
              "print(sorted(cloudpickle_pickler.loads(sys.stdin.read().encode())))")
    if plugin:
        reader = "import components.platform.beam_worker; " + reader
    process = subprocess.run([sys.executable, "-c", reader], input=pickled_for("").decode(), capture_output=True,
                             text=True, cwd=REPO, timeout=120)
    if plugin:
        assert process.returncode == 0, process.stderr[-2000:]
        assert process.stdout.strip() == str(sorted(PAYLOAD))
    else:
        assert process.returncode != 0 and "Invalid data stream" in process.stderr
