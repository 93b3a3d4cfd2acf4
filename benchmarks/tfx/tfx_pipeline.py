"""The reference the benchmarks compare with: TFX 1.16's LocalDagRunner on the same eight stages.

Runs inside the TFX virtual environment (`make_venv.sh`), not ours:

    .venv-tfx/bin/python benchmarks/tfx/tfx_pipeline.py --data DIR --root DIR --module {example,ours}

CsvExampleGen, StatisticsGen, SchemaGen, ExampleValidator, Transform, Trainer, Evaluator (against the
latest blessed model) and Pusher, as in TFX's penguin example (`penguin_pipeline_local.py`), with Beam
in-process unless --beam-multi-process. `--module example` trains TFX's own penguin Keras module
(`penguin_utils_keras.py`) on the four-feature penguin table; `--module ours` trains this project's
demo module (`demo_module.py`) on the same CSV files `pipeline.py run` reads, with the same evaluation
metrics, slices and blessing thresholds.
"""
import argparse
import os
import time

import tensorflow_model_analysis as tfma
from tfx import v1 as tfx

HERE = os.path.dirname(os.path.abspath(__file__))


def _example_module():
    import tfx.examples.penguin as penguin_example

    return os.path.join(os.path.dirname(penguin_example.__file__), "penguin_utils_keras.py")


def _example_eval_config():
    """TFX's penguin example: accuracy on the label, at least 0.6 and not worse than the baseline."""
    return tfma.EvalConfig(
        model_specs=[tfma.ModelSpec(signature_name="serving_default", label_key="species_xf",
                                    preprocessing_function_names=["transform_features"])],
        slicing_specs=[tfma.SlicingSpec()],
        metrics_specs=[tfma.MetricsSpec(metrics=[tfma.MetricConfig(
            class_name="SparseCategoricalAccuracy",
            threshold=tfma.MetricThreshold(
                value_threshold=tfma.GenericValueThreshold(lower_bound={"value": 0.6}),
                change_threshold=tfma.GenericChangeThreshold(
                    direction=tfma.MetricDirection.HIGHER_IS_BETTER, absolute={"value": -1e-10})))])])


def _our_eval_config():
    """Our evaluate stage's metrics and slices, with our default blessing gates as TFMA thresholds."""
    from components.penguins import module
    from components.stage_logic.evaluate import evaluation_config

    config = evaluation_config(module.LABEL_KEY, module.PROBLEM_TYPE, module.SLICE_COLUMNS, with_baseline=False)
    for spec in config.metrics_specs:
        for metric in spec.metrics:
            if metric.class_name == "SparseCategoricalAccuracy":
                metric.threshold.CopyFrom(tfma.MetricThreshold(
                    value_threshold=tfma.GenericValueThreshold(lower_bound={"value": 0.8}),
                    change_threshold=tfma.GenericChangeThreshold(
                        direction=tfma.MetricDirection.HIGHER_IS_BETTER, absolute={"value": -0.01})))
    return config


def create_pipeline(data, root, module, train_steps, beam_args):
    module_file = _example_module() if module == "example" else os.path.join(HERE, "demo_module.py")
    example_gen = tfx.components.CsvExampleGen(input_base=data)
    statistics_gen = tfx.components.StatisticsGen(examples=example_gen.outputs["examples"])
    schema_gen = tfx.components.SchemaGen(statistics=statistics_gen.outputs["statistics"],
                                          infer_feature_shape=True)
    example_validator = tfx.components.ExampleValidator(statistics=statistics_gen.outputs["statistics"],
                                                        schema=schema_gen.outputs["schema"])
    transform = tfx.components.Transform(examples=example_gen.outputs["examples"],
                                         schema=schema_gen.outputs["schema"], module_file=module_file)
    trainer = tfx.components.Trainer(
        module_file=module_file, examples=transform.outputs["transformed_examples"],
        transform_graph=transform.outputs["transform_graph"], schema=schema_gen.outputs["schema"],
        train_args=tfx.proto.TrainArgs(num_steps=train_steps), eval_args=tfx.proto.EvalArgs(num_steps=5))
    baseline = tfx.dsl.Resolver(
        strategy_class=tfx.dsl.experimental.LatestBlessedModelStrategy,
        model=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model),
        model_blessing=tfx.dsl.Channel(type=tfx.types.standard_artifacts.ModelBlessing),
    ).with_id("latest_blessed_model_resolver")
    evaluator = tfx.components.Evaluator(
        examples=example_gen.outputs["examples"], model=trainer.outputs["model"],
        baseline_model=baseline.outputs["model"],
        eval_config=_example_eval_config() if module == "example" else _our_eval_config())
    pusher = tfx.components.Pusher(
        model=trainer.outputs["model"], model_blessing=evaluator.outputs["blessing"],
        push_destination=tfx.proto.PushDestination(filesystem=tfx.proto.PushDestination.Filesystem(
            base_directory=os.path.join(root, "serving"))))
    return tfx.dsl.Pipeline(
        pipeline_name="tfx-reference", pipeline_root=os.path.join(root, "pipeline"),
        components=[example_gen, statistics_gen, schema_gen, example_validator, transform, trainer, baseline,
                    evaluator, pusher],
        enable_cache=False,
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
            os.path.join(root, "metadata.db")),
        beam_pipeline_args=beam_args)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="a folder of CSV files")
    parser.add_argument("--root", required=True, help="where the run's artifacts, metadata and serving models go")
    parser.add_argument("--module", choices=["example", "ours"], default="ours")
    parser.add_argument("--train-steps", type=int, default=300)
    parser.add_argument("--beam-multi-process", action="store_true",
                        help="TFX's default for local runs: Beam's DirectRunner in one process per core")
    args = parser.parse_args()
    beam_args = (["--direct_running_mode=multi_processing", "--direct_num_workers=0"]
                 if args.beam_multi_process else [])
    started = time.monotonic()
    tfx.orchestration.LocalDagRunner().run(
        create_pipeline(os.path.abspath(args.data), os.path.abspath(args.root), args.module, args.train_steps,
                        beam_args))
    print(f"tfx-reference run seconds: {time.monotonic() - started:.1f}")


if __name__ == "__main__":
    main()
