"""Writes houses.csv: a small generated table for configs/houses_two_inputs.yaml (seeded, so it is reproducible).

Columns: rooms, area (m2), age (years), distance (km to the centre), district (an integer code 0..4), and two
targets: price (in 100k) and sells_fast (0/1). Run: python configs/data/make_houses.py
"""

from pathlib import Path

import numpy as np


def main(rows: int = 800, seed: int = 7) -> None:
    rng = np.random.default_rng(seed)
    rooms = rng.integers(1, 7, rows)
    area = np.round(rooms * 22 + rng.normal(0, 12, rows), 1).clip(18)
    age = rng.integers(0, 80, rows)
    distance = np.round(rng.gamma(2.0, 3.0, rows), 2)
    district = rng.integers(0, 5, rows)
    premium = np.array([0.9, 0.4, 0.0, -0.3, 0.6])[district]
    price = 0.025 * area - 0.008 * age - 0.09 * distance + premium + 1.5 + rng.normal(0, 0.15, rows)
    per_m2 = price / area * 100 + rng.normal(0, 0.4, rows)
    sells_fast = (per_m2 < np.median(per_m2)).astype(int)
    table = np.column_stack([rooms, area, age, distance, district, np.round(price, 3), sells_fast])
    out = Path(__file__).with_name("houses.csv")
    header = "rooms,area,age,distance,district,price,sells_fast"
    np.savetxt(out, table, delimiter=",", header=header, comments="", fmt=["%d", "%.1f", "%d", "%.2f", "%d", "%.3f",
                                                                           "%d"])


if __name__ == "__main__":
    main()
