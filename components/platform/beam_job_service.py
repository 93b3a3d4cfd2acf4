"""Beam's own job service for the portable runner, running each job on as many SDK workers as it asks for.

Beam 2.59's `local_job_service_main` runs every job with one SDK worker whatever the job's
`--direct_num_workers` (its jobs go straight to `FnApiRunner.run_via_runner_api`, which never reads that
option), so a worker pool of several containers would only ever see one of them busy per job. This is the
same job service (Beam's `LocalJobServicer`, through its `beam_job_type` hook) with one change: a job's
`--direct_num_workers` (0: the job service's cores) is the number of SDK workers the runner starts and
splits each stage's input between. Flink's and Spark's job servers have their own parallelism settings
and need none of this.

    python -m components.platform.beam_job_service --port=8099      # in a container of the project image
"""
import argparse
import logging
import multiprocessing
import time


def _job_type():
    from apache_beam.options.pipeline_options import DirectOptions
    from apache_beam.portability.api import beam_job_api_pb2
    from apache_beam.runners.portability import local_job_service
    from apache_beam.runners.portability.fn_api_runner import fn_runner

    class ParallelBeamJob(local_job_service.BeamJob):
        def _invoke_runner(self):
            self.set_state(beam_job_api_pb2.JobState.RUNNING)
            options = self.pipeline_options()
            workers = int(options.view_as(DirectOptions).direct_num_workers or 1)  # a string in the job's options
            runner = fn_runner.FnApiRunner(provision_info=self._provision_info)
            # FnApiRunner.run_pipeline sets this from the same option; run_via_runner_api does not.
            runner._num_workers = workers if workers > 0 else multiprocessing.cpu_count()
            logging.info("living-pipeline job service: job %s on %d SDK worker(s)", self._job_id,
                         runner._num_workers)
            return runner.run_via_runner_api(self._pipeline_proto, options)

    return ParallelBeamJob


def main(argv=None):
    from apache_beam.runners.portability import local_job_service

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=8099, help="the port of the job API (Beam's --job_endpoint)")
    parser.add_argument("--staging_dir", default=None, help="where staged artifacts go (default: a temp folder)")
    options = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    servicer = local_job_service.LocalJobServicer(options.staging_dir, beam_job_type=_job_type())
    port = servicer.start_grpc_server(options.port)
    logging.info("living-pipeline job service: listening for Beam jobs on port %d", port)
    try:
        while True:
            time.sleep(3600)
    finally:
        servicer.stop()


if __name__ == "__main__":
    main()
