"""Deterministic synthetic data for the benchmarks: the penguin schema, or a wide variant.

    python -m benchmarks.generate --variant demo --rows 1000000 --seed 0 --out DIR

`demo` draws penguins from per-species normal distributions fitted to the Palmer penguins data (the
real data set has 344 rows), with the real island mix and about 2% missing values. `wide` has 50
numeric and 10 categorical features and a binary label that depends on a few of them. Rows are
written in files of at most 250,000 rows, so memory stays bounded and Beam can read files in parallel.
"""
import argparse
import os

import numpy as np
import pandas as pd

ROWS_PER_FILE = 250_000
SPECIES = {  # share, islands (share), measurement means and standard deviations
    "Adelie": (0.44, {"Dream": 0.37, "Torgersen": 0.34, "Biscoe": 0.29},
               {"bill_length_mm": (38.8, 2.7), "bill_depth_mm": (18.3, 1.2),
                "flipper_length_mm": (190.0, 6.5), "body_mass_g": (3700.7, 458.6)}),
    "Gentoo": (0.36, {"Biscoe": 1.0},
               {"bill_length_mm": (47.5, 3.1), "bill_depth_mm": (15.0, 1.0),
                "flipper_length_mm": (217.2, 6.5), "body_mass_g": (5076.0, 504.1)}),
    "Chinstrap": (0.20, {"Dream": 1.0},
                  {"bill_length_mm": (48.8, 3.3), "bill_depth_mm": (18.4, 1.1),
                   "flipper_length_mm": (195.8, 7.1), "body_mass_g": (3733.1, 384.3)}),
}
MISSING_FRACTION = 0.02
WIDE_NUMERIC, WIDE_CATEGORICAL = 50, 10


def demo_rows(count, rng):
    names = list(SPECIES)
    species = rng.choice(names, size=count, p=[SPECIES[s][0] for s in names])
    frame = pd.DataFrame({"species": species})
    island = np.empty(count, dtype=object)
    for name, (_, islands, measures) in SPECIES.items():
        chosen = species == name
        island[chosen] = rng.choice(list(islands), size=chosen.sum(), p=list(islands.values()))
        for column, (mean, std) in measures.items():
            if column not in frame:
                frame[column] = 0.0
            frame.loc[chosen, column] = rng.normal(mean, std, chosen.sum())
    frame.insert(1, "island", island)
    frame["bill_length_mm"] = frame["bill_length_mm"].round(1)
    frame["bill_depth_mm"] = frame["bill_depth_mm"].round(1)
    frame["flipper_length_mm"] = frame["flipper_length_mm"].round().astype("Int64")
    frame["body_mass_g"] = (frame["body_mass_g"] / 25).round().astype("Int64") * 25
    frame["sex"] = rng.choice(["male", "female"], size=count)
    frame["year"] = rng.choice([2007, 2008, 2009], size=count)
    for column in ("bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g", "sex"):
        frame.loc[rng.random(count) < MISSING_FRACTION, column] = None
    return frame


def wide_rows(count, rng):
    numeric = rng.normal(0.0, 1.0, size=(count, WIDE_NUMERIC)) * np.arange(1, WIDE_NUMERIC + 1) / 10
    frame = pd.DataFrame(numeric.round(4), columns=[f"num_{i:02d}" for i in range(WIDE_NUMERIC)])
    for i in range(WIDE_CATEGORICAL):
        levels = [f"c{i}_{level}" for level in range(5 + 2 * i)]
        frame[f"cat_{i}"] = rng.choice(levels, size=count)
    score = numeric[:, 0] - numeric[:, 1] + (frame["cat_0"] == "c0_0").to_numpy() + rng.normal(0, 0.5, count)
    frame["label"] = np.where(score > 0, "yes", "no")
    return frame


def generate(variant, rows, seed, out):
    """Writes `rows` rows of `variant` as CSV files under `out`; returns their paths."""
    os.makedirs(out, exist_ok=True)
    make = {"demo": demo_rows, "wide": wide_rows}[variant]
    paths = []
    for part, start in enumerate(range(0, rows, ROWS_PER_FILE)):
        rng = np.random.default_rng([seed, part])
        path = os.path.join(out, f"part-{part:05d}.csv")
        make(min(ROWS_PER_FILE, rows - start), rng).to_csv(path, index=False, na_rep="")
        paths.append(path)
    return paths


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variant", choices=["demo", "wide"], default="demo")
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    for path in generate(args.variant, args.rows, args.seed, args.out):
        print(path)


if __name__ == "__main__":
    main()
