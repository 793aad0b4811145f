"""config.data -> the splits a run trains on: numpy arrays for train / validation / test (or, for your own
tf.data pipeline, image folders and streamed tables, datasets of batches). Import the modules themselves; this
package exports nothing (so that its modules never import it back).

In-memory arrays (not tf.data) go to `model.fit`, exactly as a hand-written Keras script passes them, so that
batching and seeded shuffling are Keras's own and the numbers match such a script (pipeline.py turns them into
what `fit` gets). `load.load` dispatches to one module per source, all returning `Arrays` (or `Stream`s):

- npz_files: .npz files and the bundled datasets     - csv_files: CSV with a header (class-name labels too)
- named: several named inputs / outputs from CSV or npz  - keras_datasets: `source: keras` (keras.datasets)
- python_source: `source: python` (your tf.data)     - images: `source: images` (a folder per class)
- synthetic: `source: synthetic`                     - tfrecords: `source: tfrecord` records parsed into columns
- tables: CSV / Parquet / TFRecord as named columns (no model.input_shape; kcli/model/table_inputs.py builds the
  inputs); column_stats: what the model learns from a table's training split (and which strings look like free
  text); text_columns: a text column's defaults and the TextVectorization adapted on the training split
- table_files, stream, stream_pass, stream_cache: tables larger than memory, read in blocks with a seeded
  per-epoch order (as columns, or as model.input_shape's one matrix of their numbers); stream_shard:
  which rows each worker of a cluster reads
- csv_reader: the one CSV reader (pyarrow) and its row-naming fallback
- splits: Arrays / Splits and hold-out splits; labels: class names, one-hot, class weights; prepare: the
  arithmetic every split shares (scale, dtypes); checks: numbers, shapes and file keys every reader shares
- fingerprint: sha256 of the data files a run read
"""
