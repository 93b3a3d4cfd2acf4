"""Beam remembers function signatures (components/platform/beam_signatures.py) without seeing a wrong one."""
import functools
import inspect

import apache_beam as beam
from apache_beam.testing.util import assert_that, equal_to
from apache_beam.transforms import userstate
from apache_beam.typehints import decorators

from components.platform import beam_signatures
from components.platform.beam_options import pipeline_options


class Scaler(beam.DoFn):
    def process(self, element, factor=2):
        yield element * factor


class CountPerKey(beam.DoFn):
    """A stateful DoFn: Beam finds its state parameter through the signature of `process`."""
    COUNT = userstate.CombiningValueStateSpec("count", sum)

    def process(self, element, count=beam.DoFn.StateParam(COUNT)):  # noqa: B008 (Beam's idiom)
        count.add(1)
        yield element[0], count.read()


def test_signatures_are_remembered_and_equal_to_what_inspect_gives():
    beam_signatures.install()
    beam_signatures.install()  # a second call changes nothing

    def function(a, b=1, *rest, c, **named):
        return a

    scaler = Scaler()
    assert decorators.get_signature(function) == inspect.signature(function)
    assert decorators.get_signature(function) is decorators.get_signature(function)
    assert decorators.get_signature(scaler.process) == inspect.signature(scaler.process)  # without self
    assert decorators.get_signature(Scaler.process) == inspect.signature(Scaler.process)  # with self
    assert list(decorators.get_signature(Scaler().process).parameters) == ["element", "factor"]
    partial = functools.partial(function, 1)
    assert decorators.get_signature(partial) == inspect.signature(partial)
    assert str(decorators.get_signature(str.upper)) == str(decorators.get_signature(str.upper))


def test_a_function_whose_defaults_change_is_looked_up_again():
    beam_signatures.install()

    def function(a, b=1):
        return a

    assert decorators.get_signature(function).parameters["b"].default == 1
    function.__defaults__ = (5,)
    assert decorators.get_signature(function).parameters["b"].default == 5


def test_beam_still_finds_state_parameters_and_runs_a_stateful_dofn():
    beam_signatures.install()
    assert userstate.is_stateful_dofn(CountPerKey())
    assert not userstate.is_stateful_dofn(Scaler())
    with beam.Pipeline(options=pipeline_options("")) as pipeline:
        counts = pipeline | beam.Create([("a", 1), ("a", 2), ("b", 3)]) | beam.ParDo(CountPerKey())
        scaled = pipeline | "Numbers" >> beam.Create([1, 2]) | beam.ParDo(Scaler(), factor=3)
        assert_that(counts, equal_to([("a", 1), ("a", 2), ("b", 1)]), label="counts")
        assert_that(scaled, equal_to([3, 6]), label="scaled")
