"""In process or in worker processes: the one choice of how Beam's DirectRunner runs a Beam stage's pipeline
(ingest, statistics, transform, evaluate), and the workers' peak memory.

Beam's DirectRunner runs a pipeline in the stage's own process (`--direct_running_mode=in_memory`) or in
worker processes that it starts and feeds over gRPC (`multi_processing`). A worker starts a Python and imports
what the pipeline's steps need (TensorFlow with TFT or TFMA: seconds), every element crosses to it and back,
and it reads a whole input file at a time (a gzipped file cannot be split), so a worker beyond the number of
files has nothing to do. On a busy machine the workers only take cores from one another. So `choose` starts
workers only when `--beam-args` leave the mode open (no `--direct_running_mode`, no `--direct_num_workers`,
Beam's DirectRunner) and

- the stage's input is at least `MIN_INPUT_BYTES[stage]` (measured on 2 cores: benchmarks/README.md);
- it is in at least two files (or Parquet row groups);
- at least two cores are free: the cores this process may use (its CPU affinity and a cgroup CPU quota, such
  as a Kubernetes limit), less what other processes use now (`idle_cores`: /proc/stat over a moment, not
  counting this process and its parent, the local run's warm process);
- memory is free for them, WORKER_MEMORY_BYTES each (Linux's MemAvailable, a cgroup memory limit such as a
  Kubernetes pod's).

Then it takes one worker per free core, at most one per file, as many as the memory allows and at most
MAX_WORKERS (more were not measured); else the stage runs in process. The stage prints its choice and why
(a `living-pipeline beam: ` line), which the local run keeps in its summary and run report.

Each worker imports `components.platform.beam_worker` (Beam's `--beam_plugin`), which writes the worker's peak
memory at its exit into a folder that the stage process names in the workers' environment
(`worker_peaks_folder`); `workers_peak_mb` adds them up for the stage's reported peak.
"""
import contextlib
import dataclasses
import math
import os
import tempfile
import time

BEAM_LINE_PREFIX = "living-pipeline beam: "
MAX_WORKERS = 4


# The smallest input (bytes of the files a stage's pipeline reads: ingest's CSV, about 44 bytes a demo row;
# gzipped tf.Examples, about 24, of which evaluate reads the eval split's third) for which two worker processes
# save a tenth of the stage's time. Workers cost a fixed start (Python and the stage's libraries: about 2 s of
# CPU a worker for ingest, 6-7 s for the others) and more CPU a row (ingest none, statistics and evaluate 1.2
# times, transform 1.25); measured on 2 cores (benchmarks/README.md, "Both cores"). Ingest's workers write one
# file per worker and split, which is what lets transform's workers read apart: its size comes first.
MIN_INPUT_BYTES = {"ingest": 24_000_000, "statistics": 24_000_000, "transform": 16_000_000, "evaluate": 12_000_000}
# What a worker may take: at 1M demo rows, 0.5 GB for ingest and 0.9 GB for transform (Python, the libraries, its
# share of the data), beside the stage process's own.
WORKER_MEMORY_BYTES = 1_000_000_000
IDLE_SAMPLE_S = 0.5
PEAKS_VARIABLE = "LIVING_PIPELINE_BEAM_WORKER_PEAKS"
_PEAKS_PREFIX = "living-pipeline-beam-workers-"


@dataclasses.dataclass(frozen=True)
class Choice:
    """How the DirectRunner runs: `workers` processes (1: in the stage's process; 0: as --beam-args say)."""
    workers: int
    why: str

    def line(self):
        if self.workers == 0:
            how = self.why
        elif self.workers == 1:
            how = f"in process ({self.why})"
        else:
            how = f"{self.workers} worker processes ({self.why})"
        return BEAM_LINE_PREFIX + how


def megabytes(size):
    """A size in 3 significant digits: 15 kB, 23.6 MB, 1.2 GB."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6)):
        if size >= scale:
            return f"{float(f'{size / scale:.3g}'):g} {unit}"
    return f"{size / 1e3:,.0f} kB"


def choose(stage, reads, cores, idle=None, memory=None):
    """The choice for `stage`'s pipeline, whose input `reads` are each read apart (a split: a list of its files'
    byte sizes; None: not known), on a machine where this process may use `cores` cores; `idle()` gives the
    cores free now and `memory()` the bytes of memory (both asked only when the rest allow workers).
    --beam-args that set the mode are the caller's to honour (see `Choice`). Beam runs the reads one after
    another, each file in one worker: the largest read's files are the work that can run side by side."""
    if reads is None:
        return Choice(1, "input size not known")
    total = sum(sum(read) for read in reads)
    files = len(max(reads, key=sum, default=[]))
    in_files = f"{files} file{'s' if files != 1 else ''}"
    read = f"input {megabytes(total)}" + (f" in {in_files}" if len(reads) == 1 else
                                           f", its largest part in {in_files}")
    minimum = MIN_INPUT_BYTES.get(stage, MIN_INPUT_BYTES["ingest"])
    if total < minimum:
        return Choice(1, f"input {megabytes(total)}, under the {megabytes(minimum)} that pays for workers")
    if files < 2:
        return Choice(1, f"{read}: a worker reads a whole file")
    if cores < 2:
        return Choice(1, f"{read}, 1 core")
    free = min(cores, idle()) if idle else cores
    workers = min(math.floor(free + 0.25), files, MAX_WORKERS)
    if workers < 2:
        return Choice(1, f"{read}, {free:.1f} of {cores} cores free")
    available = memory() if memory else None
    if available is not None and available < workers * WORKER_MEMORY_BYTES:
        workers = int(available // WORKER_MEMORY_BYTES)
        if workers < 2:
            return Choice(1, f"{read}, {megabytes(available)} of memory free")
    return Choice(workers, f"{read}, {free:.1f} of {cores} cores free")


def usable_cores():
    """The cores this process may run on: its CPU affinity, capped by a cgroup CPU quota (v2 or v1)."""
    cores = len(os.sched_getaffinity(0))
    for quota_file, period_file in (("/sys/fs/cgroup/cpu.max", None),
                                    ("/sys/fs/cgroup/cpu/cpu.cfs_quota_us", "/sys/fs/cgroup/cpu/cpu.cfs_period_us")):
        try:
            with open(quota_file) as source:
                fields = source.read().split()
            if period_file:
                with open(period_file) as source:
                    fields.append(source.read().strip())
        except OSError:
            continue
        if len(fields) >= 2 and fields[0] not in ("max", "-1"):
            return max(1, min(cores, math.ceil(int(fields[0]) / int(fields[1]))))
        break
    return cores


def free_memory():
    """Bytes of memory free for more processes: Linux's MemAvailable, and under a cgroup memory limit (v2 or v1)
    what the limit leaves; None if neither can be read."""
    found = []
    try:
        with open("/proc/meminfo") as source:
            found += [int(line.split()[1]) * 1024 for line in source if line.startswith("MemAvailable:")]
    except OSError:
        pass
    for limit_file, usage_file in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                                   ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                                    "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        try:
            with open(limit_file) as limit, open(usage_file) as usage:
                limit_text, used = limit.read().strip(), int(usage.read())
        except (OSError, ValueError):
            continue
        if limit_text.isdigit() and int(limit_text) < 1 << 60:  # else no limit
            found.append(max(0, int(limit_text) - used))
        break
    return min(found) if found else None


def _cpu_ticks(cpus):
    """(busy, all) clock ticks so far of the CPUs `cpus`, from /proc/stat."""
    busy = total = 0
    with open("/proc/stat") as source:
        for line in source:
            name, *values = line.split()
            if name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in cpus:
                ticks = [int(value) for value in values[:8]]  # user nice system idle iowait irq softirq steal
                total += sum(ticks)
                busy += sum(ticks) - ticks[3] - ticks[4]
    return busy, total


def _process_ticks(pid):
    """User and system clock ticks so far of process `pid` (0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as source:
            fields = source.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return int(fields[11]) + int(fields[12])


def idle_cores(seconds=IDLE_SAMPLE_S):
    """The cores of this process's affinity that other processes leave free, over `seconds` (Linux's /proc);
    this process and its parent (the local run's warm process, which may still be importing) count as free."""
    cpus = os.sched_getaffinity(0)
    ours = (os.getpid(), os.getppid())
    try:
        busy, total = _cpu_ticks(cpus)
        own = sum(_process_ticks(pid) for pid in ours)
        time.sleep(seconds)
        busy_after, total_after = _cpu_ticks(cpus)
    except OSError:
        return len(cpus)
    own_after = sum(_process_ticks(pid) for pid in ours)
    if total_after <= total:
        return len(cpus)
    others = max(0, (busy_after - busy) - (own_after - own))
    return len(cpus) * (1 - others / (total_after - total))


def _peak_mb(status_path):
    with open(status_path) as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def worker_peaks_folder():
    """The folder in which this process's Beam workers record their peak memory, named in the environment they
    inherit (PEAKS_VARIABLE); made on first use. A folder inherited from another process is not this one's."""
    folder = os.environ.get(PEAKS_VARIABLE, "")
    prefix = f"{_PEAKS_PREFIX}{os.getpid()}-"
    if not (os.path.basename(folder).startswith(prefix) and os.path.isdir(folder)):
        folder = tempfile.mkdtemp(prefix=prefix)
        os.environ[PEAKS_VARIABLE] = folder
    return folder


def record_worker_peak():
    """In a Beam worker: writes its peak memory (MB) into its stage's folder, if the stage named one."""
    folder = os.environ.get(PEAKS_VARIABLE, "")
    if not os.path.isdir(folder):
        return
    with open(os.path.join(folder, str(os.getpid())), "w") as sink:
        sink.write(f"{_peak_mb('/proc/self/status'):.1f}\n")


def workers_peak_mb():
    """The sum of the peaks of the Beam workers this process started and that have ended (0 if none): with the
    process's own peak, an upper bound on their memory at any one time. Their files are read once and removed,
    with the folder (a later pipeline makes a new one)."""
    folder = os.environ.get(PEAKS_VARIABLE, "")
    if os.path.basename(folder).startswith(f"{_PEAKS_PREFIX}{os.getpid()}-"):
        for name in _listing(folder):
            path = os.path.join(folder, name)
            try:
                with open(path) as source:
                    _ENDED_WORKERS_MB[name] = float(source.read() or 0)
                os.remove(path)
            except (OSError, ValueError):  # a worker stopped while it wrote the file
                continue
        with contextlib.suppress(OSError):
            os.rmdir(folder)
            del os.environ[PEAKS_VARIABLE]
    return sum(_ENDED_WORKERS_MB.values())


def _listing(folder):
    try:
        return os.listdir(folder)
    except OSError:
        return []


# Peaks (MB) of this process's ended workers, by process id, once read from their files.
_ENDED_WORKERS_MB = {}
