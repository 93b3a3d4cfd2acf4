"""The run's storage settings: one typed value built from the flags, in the pipeline's arguments as JSON,
in every Beam stage's options, and never holding a credential."""
import shlex

import pytest

from components.errors import StageError
from components.platform.beam_runner import stage_beam_args
from components.state.storage import Storage, StorageSettings
from pipeline_cli import _pipeline_arguments, parse_args


def run_arguments(*flags):
    return _pipeline_arguments(parse_args(["run", *flags]))


def test_the_storage_flags_and_the_same_options_in_beam_args_give_one_setting():
    by_flags = run_arguments("--s3-endpoint-url", "http://seaweed:8333", "--s3-region", "eu-west-1",
                             "--beam-args=--direct_num_workers=2")
    by_beam_args = run_arguments("--beam-args=--s3_endpoint_url=http://seaweed:8333 --direct_num_workers=2 "
                                 "--s3_region_name=eu-west-1")
    for arguments in (by_flags, by_beam_args):
        assert StorageSettings.from_json(arguments["storage_settings"]) == StorageSettings(
            s3_endpoint_url="http://seaweed:8333", s3_region_name="eu-west-1")
        assert arguments["beam_args"] == "--direct_num_workers=2"
    assert run_arguments()["storage_settings"] == ""


def test_a_setting_given_two_ways_with_two_values_is_one_line():
    with pytest.raises(StageError, match=r"^--beam-args sets --s3_endpoint_url=http://b:2, and the storage "
                                         r"settings already say 'http://a:1': give it once\.$"):
        run_arguments("--s3-endpoint-url", "http://a:1", "--beam-args=--s3_endpoint_url=http://b:2")


@pytest.mark.parametrize("text,expected", [
    ('{"s3_secret_access_key": "k3y"}', r"s3_secret_access_key is not one\. Credentials come from"),
    ("[1]", r"the storage settings are a JSON object with the keys s3_endpoint_url, s3_region_name"),
    ("{not json", r"is not JSON"),
])
def test_settings_that_are_not_settings_are_refused(text, expected):
    with pytest.raises(StageError, match=expected):
        StorageSettings.from_json(text)


def test_settings_travel_as_json_and_reach_a_beam_stages_options():
    settings = StorageSettings(s3_endpoint_url="http://minio:9000", s3_disable_ssl=True)
    assert StorageSettings.from_json(settings.to_json()) == settings
    assert Storage.from_json(settings.to_json()).settings == settings
    options = shlex.split(stage_beam_args("--direct_num_workers=2", "ingest", settings))
    assert {"--s3_endpoint_url=http://minio:9000", "--s3_disable_ssl", "--direct_num_workers=2"} <= set(options)
    with pytest.raises(StageError, match="^--beam-args holds --s3_access_key_id, a credential"):
        stage_beam_args("--s3_access_key_id=AKIA", "ingest", settings)


def test_two_storages_keep_their_own_settings():
    """Nothing is set up process-wide: each Storage reaches buckets with its own settings."""
    first, second = Storage(StorageSettings(s3_endpoint_url="http://a:1")), Storage()
    assert first._options().get_all_options()["s3_endpoint_url"] == "http://a:1"
    assert second._options().get_all_options()["s3_endpoint_url"] is None
    assert first._options().get_all_options()["s3_endpoint_url"] == "http://a:1"
