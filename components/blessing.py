"""The blessing artifact: evaluate's decision, read by push.

Written as TFX writes it (an empty BLESSED or NOT_BLESSED file) and as JSON with the reasons.
"""
import json
import os

BLESSING_FILE = "blessing.json"


def write_blessing(decision, blessing_dir):
    os.makedirs(blessing_dir, exist_ok=True)
    open(os.path.join(blessing_dir, "BLESSED" if decision["blessed"] else "NOT_BLESSED"), "w").close()
    with open(os.path.join(blessing_dir, BLESSING_FILE), "w") as sink:
        json.dump(decision, sink, indent=2)


def read_blessing(blessing_dir):
    with open(os.path.join(blessing_dir, BLESSING_FILE)) as source:
        return json.load(source)
