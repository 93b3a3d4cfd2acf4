"""The pipeline's stages in one table: everything the platform needs to know about each, one row a stage.

A row names the stage's KFP component (components/stages.py) and says what the stage asks of a cluster,
which kept state it reads or writes (the state that outlives a run), whether KFP may reuse a cached result,
and which modules the local warm process preloads for it (or leaves to the stage). The KFP platform settings
(resources, state mounts: components/platform/cluster.py), caching (pipeline.py), the warm process
(components/platform/warm_stages.py) and the tests all read this table; tests/test_stage_table.py checks
it against each component's signature. Adding a stage: its logic in components/stage_logic/, its
component in components/stages.py, its row here, its wiring in pipeline.py.
"""
import enum
from typing import Callable, NamedTuple

from components import stages
from components.platform.time_limits import DEFAULT_TIMEOUT_S


class KeptState(str, enum.Enum):
    """State kept between runs, by the pipeline parameter that names where it lives."""
    STATISTICS_STORE = "statistics_root"  # per model: kept schemas, each stored span's statistics and verdict
    SERVING_ROOT = "serving_root"  # the published versions of each model


class Resources(NamedTuple):
    """Portable task settings: KFP turns them into the pod's requests and limits, Vertex AI picks a
    machine type from the limits, kfp.local ignores them."""
    cpu_request: str
    cpu_limit: str
    memory_request: str
    memory_limit: str


HOUR = 3600


class Stage(NamedTuple):
    component: Callable
    resources: Resources
    kept_state: frozenset = frozenset()
    # False where a result depends on more than the stage's inputs (new files, kept state): never reused.
    cached: bool = True
    # Imported by the warm process before the stage can start (in pipeline order; see warm_stages).
    preloads: tuple = ()
    # Imported not by the warm process but by the stage's standby, a child it forks ahead of the stage
    # (warm_stages.standby_stages): a library that would make the warm process the run's largest process for the
    # whole run (TFMA, for evaluate).
    own_imports: tuple = ()
    # The stage's default time limit (components/platform/time_limits.py; measured in docs/safety.md).
    timeout_s: int = DEFAULT_TIMEOUT_S

    @property
    def name(self):
        return self.component.__name__


# Resources: measured peaks on the demo and at 1M rows (benchmarks/README.md): no stage above 1.2 GB; the
# Beam stages and training use two cores when they have them.
STAGES = (
    # Reads new files (or a database) each run: never cached.
    Stage(stages.ingest, Resources("500m", "2", "1G", "4G"), cached=False,
          preloads=("components.stage_logic.ingest",)),
    Stage(stages.statistics, Resources("1", "2", "2G", "4G"),
          preloads=("tensorflow", "apache_beam", "components.stage_logic.statistics")),
    Stage(stages.schema, Resources("250m", "1", "512M", "2G"), frozenset({KeptState.STATISTICS_STORE}),
          cached=False, preloads=("components.stage_logic.schema",), timeout_s=HOUR // 2),
    Stage(stages.validate, Resources("500m", "1", "1G", "2G"), frozenset({KeptState.STATISTICS_STORE}),
          cached=False, preloads=("components.stage_logic.validate",), timeout_s=HOUR // 2),
    Stage(stages.transform, Resources("1", "2", "2G", "4G"), preloads=("components.stage_logic.transform",)),
    Stage(stages.tune, Resources("1", "2", "2G", "4G"), preloads=("components.stage_logic.tune",),
          timeout_s=6 * HOUR),
    Stage(stages.train, Resources("1", "2", "2G", "4G"), preloads=("components.stage_logic.train",),
          timeout_s=6 * HOUR),
    Stage(stages.evaluate, Resources("1", "2", "2G", "4G"), frozenset({KeptState.SERVING_ROOT}), cached=False,
          own_imports=("components.stage_logic.evaluate",)),
    Stage(stages.push, Resources("250m", "1", "512M", "2G"),
          frozenset({KeptState.SERVING_ROOT, KeptState.STATISTICS_STORE}), cached=False,
          preloads=("components.stage_logic.push", "components.state.provenance"), timeout_s=4 * HOUR),
)
BY_NAME = {stage.name: stage for stage in STAGES}
TIMEOUTS = {stage.name: stage.timeout_s for stage in STAGES}
