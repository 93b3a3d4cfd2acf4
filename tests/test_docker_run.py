"""`run --runner docker` without Docker: what the containers will see is settled before anything runs.

kfp.local's DockerRunner mounts only the pipeline root into the stages' containers. The end-to-end run
in containers is `make e2e-docker` (it needs a Docker engine)."""
import os
import subprocess
import sys

import pytest

from components.penguins import curated_schema_path
from components.platform.local_run import LocalRunError, container_arguments
from helpers import REPO


def arguments(root, **changes):
    return {"serving_root": str(root / "serving"), "statistics_root": str(root / "statistics"),
            "data_pattern": "", "serving_data": "", "schema_path": curated_schema_path(),
            "module": "components.penguins.module", **changes}


def test_paths_under_the_pipeline_root_pass_and_the_schema_file_is_copied_in(tmp_path):
    adapted = container_arguments(arguments(tmp_path), str(tmp_path))
    assert adapted["serving_root"] == str(tmp_path / "serving")
    assert adapted["schema_path"] == str(tmp_path / "inputs" / "schema.pbtxt")
    with open(adapted["schema_path"]) as copy, open(curated_schema_path()) as original:
        assert copy.read() == original.read()
    assert adapted["module"] == "components.penguins.module"  # an import path: inside the image


def test_a_module_file_from_elsewhere_is_copied_in(tmp_path):
    module = tmp_path / "elsewhere" / "my_module.py"
    module.parent.mkdir()
    module.write_text("LABEL_KEY = 'y'\n")
    root = tmp_path / "root"
    adapted = container_arguments(arguments(root, module=str(module)), str(root))
    assert adapted["module"] == str(root / "inputs" / "my_module.py")


@pytest.mark.parametrize("name, flag", [("serving_root", "--serving-root"), ("statistics_root", "--statistics-root"),
                                        ("data_pattern", "--data"), ("serving_data", "--serving-data")])
def test_a_folder_outside_the_pipeline_root_is_refused_naming_the_flag(tmp_path, name, flag):
    outside = str(tmp_path / "outside" / "x")
    with pytest.raises(LocalRunError, match=f"^{flag} {outside} is outside the pipeline root"):
        container_arguments(arguments(tmp_path / "root", **{name: outside}), str(tmp_path / "root"))


def test_remote_paths_are_left_alone(tmp_path):
    adapted = container_arguments(arguments(tmp_path, serving_root="gs://bucket/serving"), str(tmp_path))
    assert adapted["serving_root"] == "gs://bucket/serving"


@pytest.mark.slow
def test_cli_refuses_a_serving_root_the_containers_cannot_see_before_running_anything(tmp_path):
    result = subprocess.run([sys.executable, "pipeline.py", "run", "--runner", "docker", "--pipeline-root",
                             str(tmp_path / "root"), "--serving-root", str(tmp_path / "serving"),
                             "--statistics-root", ""], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip() == (f"Error: --serving-root {tmp_path / 'serving'} is outside the pipeline root "
                                     f"{tmp_path / 'root'}: the docker runner mounts only the pipeline root into "
                                     "the stages' containers; put it under the pipeline root")
    assert not (tmp_path / "serving").exists() and not (tmp_path / "root").exists()


@pytest.mark.slow
def test_cli_without_a_docker_engine_is_one_clear_error(tmp_path):
    env = {**os.environ, "DOCKER_HOST": f"unix://{tmp_path / 'no-docker.sock'}"}
    result = subprocess.run([sys.executable, "pipeline.py", "run", "--runner", "docker", "--pipeline-root",
                             str(tmp_path / "root"), "--serving-root", str(tmp_path / "root" / "serving"),
                             "--statistics-root", ""], cwd=REPO, capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 2
    assert result.stderr.startswith("Error: --runner docker: no Docker engine answers (")
    assert result.stderr.strip().endswith("start dockerd, or point DOCKER_HOST at one")
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "root" / "serving").exists()
