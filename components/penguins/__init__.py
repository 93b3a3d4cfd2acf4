"""The demo: the Palmer penguins data's curated schema and its user module."""
import importlib.resources


def curated_schema_path():
    return str(importlib.resources.files(__name__) / "schema.pbtxt")
