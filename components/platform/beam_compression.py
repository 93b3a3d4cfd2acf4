"""How Beam compresses the objects it pickles with cloudpickle: quickly where they never leave the machine.

Beam 2.59's cloudpickle pickler compresses every DoFn, source and combiner it pickles with bz2 at level 9, to
keep a pipeline's graph small on its way to a remote service. The DirectRunner pickles each of them as it
builds the graph and unpickles them again for every bundle: on the demo's transform about 1,800 compressions
and 2,200 decompressions, a tenth of the stage. While a pipeline whose graph stays on this machine is built and
run (the DirectRunner, in the stage's process or in its worker processes), `quickly_while(True)` makes them zlib
at level 1 (bz2 was 0.4 s of the demo's transform under cProfile; the stage took 3.7-4.2 s against 4.6 s). Outside
such a `with`, and for any other runner, they are Beam's bz2, so a remote runner's workers need not install the
codec, and a pipeline of the user's own in the same process (a notebook's) is pickled as Beam pickles it.

Decompression reads either, by the stream's own header: a bz2 stream starts with "BZh", and a zlib stream
cannot (its first byte names the method, 8, in its low four bits; "B" is 0x42). So whatever one setting
pickled, the other unpickles. Beam's pickles of coders (zlib at level 9) are left as they are.

`install()` puts the codec in place (once per process; safe to call again). The DirectRunner's worker
processes install it as they start (components.platform.beam_worker), before they unpickle anything.
Beam 2.59 is pinned (constraints.txt): its cloudpickle pickler calls `bz2.compress` and `bz2.decompress`
through its module's `bz2` name.
"""
import bz2
import contextlib
import importlib
import zlib

_PICKLER_MODULE = "apache_beam.internal.cloudpickle_pickler"
_BZ2_HEADER = b"BZh"


class _Codec:
    """In the pickler module's `bz2` name: compresses as the setting says, decompresses either."""

    quickly = False

    @classmethod
    def compress(cls, data, compresslevel=9):
        return zlib.compress(data, 1) if cls.quickly else bz2.compress(data, compresslevel)

    @staticmethod
    def decompress(data):
        return bz2.decompress(data) if data[:len(_BZ2_HEADER)] == _BZ2_HEADER else zlib.decompress(data)


def install():
    """Gives Beam's cloudpickle pickler the codec: Beam's bz2 outside `quickly_while(True)`."""
    pickler = importlib.import_module(_PICKLER_MODULE)
    if pickler.bz2 is not _Codec:
        pickler.bz2 = _Codec


@contextlib.contextmanager
def quickly_while(quickly):
    """Inside the `with`, pickles are compressed with zlib at level 1 (`quickly`) or with Beam's bz2 at level 9;
    after it, as before it. The setting is the process's: one stage pipeline at a time (the stages run one per
    process), or nested ones."""
    install()
    before = _Codec.quickly
    _Codec.quickly = bool(quickly)
    try:
        yield
    finally:
        _Codec.quickly = before
