"""Writes listings.csv: a small generated table of flats for sale for configs/houses_columns.yaml (seeded), and
the same rows as listings.parquet (configs/houses_parquet.yaml) and listings.tfrecord (tf.train.Example
records, configs/houses_tfrecord.yaml; an empty cell is a feature the record lacks).

Columns as a real export has them: numbers (rooms, area in m2, age in years, some ages unknown = empty cells),
text (district, heating; some heating unknown), and the label `band` as a class name (cheap / fair / pricey).
Run: python configs/data/make_listings.py
"""

import csv
from pathlib import Path

import numpy as np

DISTRICTS = {"harbour": 0.6, "old town": 0.9, "university": 0.2, "north end": -0.3, "airport": -0.6}
HEATING = {"gas": 0.1, "heat pump": 0.3, "oil": -0.2, "district": 0.0}


def main(rows: int = 600, seed: int = 11) -> None:
    rng = np.random.default_rng(seed)
    out = Path(__file__).with_name("listings.csv")
    with out.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["rooms", "area", "age", "district", "heating", "band"])
        for _ in range(rows):
            rooms = int(rng.integers(1, 7))
            area = round(max(18.0, rooms * 22 + rng.normal(0, 12)), 1)
            age = int(rng.integers(0, 90))
            district = str(rng.choice(list(DISTRICTS)))
            heating = str(rng.choice(list(HEATING)))
            value = 0.02 * area - 0.012 * age + DISTRICTS[district] + HEATING[heating] + rng.normal(0, 0.25)
            band = "cheap" if value < 0.9 else "fair" if value < 2.0 else "pricey"
            writer.writerow([rooms, area, "" if rng.random() < 0.08 else age, district,
                             "" if rng.random() < 0.05 else heating, band])


def copies(csv_path: Path) -> None:
    """listings.parquet and listings.tfrecord with the rows of listings.csv."""
    import pyarrow.parquet as pq
    import tensorflow as tf
    from pyarrow import csv as pacsv

    table = pacsv.read_csv(csv_path, convert_options=pacsv.ConvertOptions(strings_can_be_null=True))
    pq.write_table(table, csv_path.with_suffix(".parquet"))
    with tf.io.TFRecordWriter(str(csv_path.with_suffix(".tfrecord"))) as writer:
        for row in table.to_pylist():
            feature = {}
            for name, value in row.items():
                if value is None:
                    continue   # an empty cell: the record lacks the feature
                if isinstance(value, str):
                    feature[name] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[value.encode()]))
                elif isinstance(value, int):
                    feature[name] = tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))
                else:
                    feature[name] = tf.train.Feature(float_list=tf.train.FloatList(value=[value]))
            writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())


if __name__ == "__main__":
    main()
    copies(Path(__file__).with_name("listings.csv"))
