"""`tf.train.Example` messages without importing TensorFlow.

Ingest only writes Examples; importing TensorFlow for the proto class would cost it seconds of start-up.
These classes are built from a descriptor that is wire-identical to TensorFlow's `example.proto` and
`feature.proto` (same field numbers and types, packed numeric lists), under a package name of our own
so they never clash with TensorFlow's when both are loaded in one process.
"""
import functools

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

_PACKAGE = "living_pipeline.wire"
_FieldProto = descriptor_pb2.FieldDescriptorProto


def _field(name, number, field_type, label=_FieldProto.LABEL_OPTIONAL, type_name=None, packed=False):
    field = _FieldProto(name=name, number=number, type=field_type, label=label)
    if type_name:
        field.type_name = f".{_PACKAGE}.{type_name}"
    if packed:
        field.options.packed = True
    return field


@functools.cache
def _message_classes():
    repeated = _FieldProto.LABEL_REPEATED
    file_proto = descriptor_pb2.FileDescriptorProto(
        name="living_pipeline/wire/example.proto", package=_PACKAGE, syntax="proto3")
    file_proto.message_type.add(name="BytesList").field.append(
        _field("value", 1, _FieldProto.TYPE_BYTES, repeated))
    file_proto.message_type.add(name="FloatList").field.append(
        _field("value", 1, _FieldProto.TYPE_FLOAT, repeated, packed=True))
    file_proto.message_type.add(name="Int64List").field.append(
        _field("value", 1, _FieldProto.TYPE_INT64, repeated, packed=True))
    feature = file_proto.message_type.add(name="Feature")
    feature.oneof_decl.add(name="kind")
    for number, (name, type_name) in enumerate(
            [("bytes_list", "BytesList"), ("float_list", "FloatList"), ("int64_list", "Int64List")], 1):
        field = _field(name, number, _FieldProto.TYPE_MESSAGE, type_name=type_name)
        field.oneof_index = 0
        feature.field.append(field)
    features = file_proto.message_type.add(name="Features")
    entry = features.nested_type.add(name="FeatureEntry")
    entry.options.map_entry = True
    entry.field.append(_field("key", 1, _FieldProto.TYPE_STRING))
    entry.field.append(_field("value", 2, _FieldProto.TYPE_MESSAGE, type_name="Feature"))
    features.field.append(
        _field("feature", 1, _FieldProto.TYPE_MESSAGE, repeated, type_name="Features.FeatureEntry"))
    file_proto.message_type.add(name="Example").field.append(
        _field("features", 1, _FieldProto.TYPE_MESSAGE, type_name="Features"))

    pool = descriptor_pool.DescriptorPool()
    pool.Add(file_proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{_PACKAGE}.Example"))


def serialize_example(values):
    """Serializes `{name: value}` to a tf.train.Example; None values are left out (absent features).

    Values are `int` (int64_list), `float` (float_list) or `str`/`bytes` (bytes_list).
    """
    example = _message_classes()()
    features = example.features.feature
    for name, value in values.items():
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float, str, bytes)):
            raise TypeError(f"feature {name!r}: unsupported value {value!r}")
        if isinstance(value, int):
            features[name].int64_list.value.append(value)
        elif isinstance(value, float):
            features[name].float_list.value.append(value)
        else:
            features[name].bytes_list.value.append(value.encode() if isinstance(value, str) else value)
    return example.SerializeToString(deterministic=True)


def parse_example(serialized):
    """A serialized tf.train.Example as a message of this module's class (raises DecodeError)."""
    return _message_classes().FromString(serialized)


def canonical_bytes(serialized):
    """The deterministic serialization of a tf.train.Example, whatever wrote it (features sorted by name)."""
    return parse_example(serialized).SerializeToString(deterministic=True)


def example_values(serialized):
    """{feature: first value} of a serialized tf.Example; bytes stay bytes. Empty features are left out."""
    values = {}
    for name, feature in parse_example(serialized).features.feature.items():
        kind = feature.WhichOneof("kind")
        if kind and getattr(feature, kind).value:
            values[name] = getattr(feature, kind).value[0]
    return values
