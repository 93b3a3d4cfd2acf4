"""Beam's look-ups of Python function signatures, remembered per function.

Each time Beam builds, translates or runs a DoFn, it asks for the signature of every method of it (looking for
state and timer parameters; `apache_beam.transforms.userstate.get_dofn_specs`), through
`apache_beam.typehints.decorators.get_signature`, which calls `inspect.signature` again every time. On the demo
that is about 34,000 calls for the statistics stage and 80,000 for transform, for a few hundred distinct
functions: a fifth of a small Beam stage's CPU. A function's signature depends only on the function (its
parameters, defaults and annotations), so `install()` makes Beam remember it, for plain functions and methods
bound to them; any other callable (a builtin, a class, a `functools.partial`) is looked up as before. A
function whose defaults are replaced afterwards is looked up again.

Beam 2.59 is pinned (constraints.txt): `get_signature` is imported by name into the modules listed below.
"""
import importlib
import types
import weakref

_MODULES = ("apache_beam.typehints.decorators", "apache_beam.transforms.core", "apache_beam.transforms.ptransform",
            "apache_beam.transforms.util")


def install():
    """Makes Beam's modules remember signatures (once per process; safe to call again)."""
    decorators = importlib.import_module(_MODULES[0])
    if getattr(decorators.get_signature, "remembers", False):
        return
    original = decorators.get_signature
    remembering = _remembering(original)
    for name in _MODULES:
        module = importlib.import_module(name)
        if module.get_signature is original:
            module.get_signature = remembering


def _remembering(get_signature):
    known = weakref.WeakKeyDictionary()  # function -> (its defaults when looked up, {bound: signature})

    def remembered_signature(func):
        if isinstance(func, types.FunctionType):
            function, bound = func, False
        elif isinstance(func, types.MethodType) and isinstance(func.__func__, types.FunctionType):
            function, bound = func.__func__, True
        else:
            return get_signature(func)
        entry = known.get(function)
        if entry is None or entry[0] is not function.__defaults__:
            entry = known[function] = (function.__defaults__, {})
        signature = entry[1].get(bound)
        if signature is None:
            signature = entry[1][bound] = get_signature(func)
        return signature

    remembered_signature.remembers = True
    return remembered_signature
