"""`source: images`: a folder with one sub-folder per class, read by `keras.utils.image_dataset_from_directory`
exactly as a hand-written script calls it (image_size, color_mode, interpolation, batch_size, seeded shuffle and
validation split), so the numbers are that script's.

    data:
      source: images
      path: flowers/            # flowers/roses/*.jpg, flowers/tulips/*.png, ...
      image_size: [64, 64]      # every image is resized to this (Keras's default 256 x 256)
      color_mode: rgb           # grayscale | rgb | rgba
      validation_split: 0.2     # seeded, Keras's own subset split
      test: {path: flowers-test/}

Labels are class ids in the order of the sorted sub-folder names; the names are kept in run.json (`classes`) and
`kcli predict` writes them. Every file Keras would read is checked first: an empty file, one that is not a
JPEG, PNG, GIF or BMP, or one that does not decode whole (cut short, damaged; each decoded once) is one line naming
it (TensorFlow would fail mid-epoch without saying which file).
"""

from __future__ import annotations

import atexit
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from kcli.config.model_io import Ports
from kcli.data.python_source import Stream, stream_of
from kcli.errors import DataError
from kcli.files import readable

HINT = "Make data.image_size (and color_mode: grayscale 1, rgb 3, rgba 4 channels) match model.input_shape"
EXTENSIONS = (".jpeg", ".jpg", ".png", ".bmp", ".gif")   # what image_dataset_from_directory reads
_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM")


def load(data: Any, seed: int, ports: Ports) -> tuple[Stream, Stream | None, Stream | None, list[str], list[str]]:
    """(train, validation, test, class names, notes: the bad images skipped)."""
    notes: list[str] = []
    folder = _folder(data.path, "data.path")
    root = _good_images(folder, data, notes)
    classes = check_folder(root, "data.path", CHANNELS[data.color_mode], folder)
    split = data.validation_split
    if split is not None:
        train, validation = _dataset(root, data, seed, split, "both")
    else:
        train, validation = _dataset(root, data, seed), None
        if data.validation is not None:
            validation = _split_dataset(data.validation.path, data, seed, classes, "data.validation", notes)
    test = _split_dataset(data.test.path, data, seed, classes, "data.test", notes) if data.test is not None else None
    def stream(dataset: Any, name: str) -> Stream | None:
        return stream_of(dataset, name, ports, "data.image_size", HINT) if dataset is not None else None

    return stream(train, "train"), stream(validation, "validation"), stream(test, "test"), classes, notes


def _good_images(root: Path, data: Any, notes: list[str]) -> Path:
    """With data.skip_bad_images: a temporary copy of the folder tree holding links to its good images only (the
    same names, so Keras lists them in the same order as the original folder without the bad files); the bad
    ones are counted in `notes`. Without it: the folder itself."""
    if not data.skip_bad_images:
        return root
    bad = list(bad_images(images_in(root, "data.path"), CHANNELS[data.color_mode]))
    if not bad:
        return root
    shown = ", ".join(str(f.relative_to(root)) for f in bad[:3]) + (", ..." if len(bad) > 3 else "")
    notes.append(f"skipped {len(bad)} file(s) of {root} that are not images (data.skip_bad_images): {shown}")
    linked = Path(tempfile.mkdtemp(prefix="kcli-images-"))
    atexit.register(shutil.rmtree, linked, True)
    skip = set(bad)
    for file in images_in(root, "data.path"):
        if file not in skip:
            target = linked / file.relative_to(root)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(file.resolve())
    for folder in readable.subfolders(root, "data.path"):
        (linked / folder.name).mkdir(exist_ok=True)   # a class whose images are all bad stays a class
    return linked


def _split_dataset(path: str | None, data: Any, seed: int, classes: list[str], key: str,
                   notes: list[str] | None = None) -> Any:
    folder = _folder(path, f"{key}.path")
    root = _good_images(folder, data, notes if notes is not None else [])
    found = check_folder(root, f"{key}.path", CHANNELS[data.color_mode], folder)
    if found != classes:
        raise DataError(f"{root} has the classes {found}; the training folder has {classes}", key=f"{key}.path")
    return _dataset(root, data, seed, shuffle=False, key=f"{key}.path")


def _dataset(root: Path, data: Any, seed: int, split: float | None = None, subset: str | None = None,
             shuffle: bool = True, key: str = "data.path") -> Any:
    import keras

    try:
        return keras.utils.image_dataset_from_directory(
            str(root), labels="inferred", label_mode="int", color_mode=data.color_mode, batch_size=data.batch_size,
            image_size=tuple(data.image_size), shuffle=shuffle, seed=seed, validation_split=split, subset=subset,
            interpolation=data.interpolation, verbose=False)
    except RecursionError:   # Keras walks the folder with os.walk, one Python call per level of folders
        raise DataError(f"{root} holds folders nested too deep for Keras's folder walk (Python's "
                        f"limit of {sys.getrecursionlimit()} nested calls); move the images into shallower folders",
                        key=key) from None


def _folder(path: str | None, key: str) -> Path:
    root = Path(path or "")
    if not root.is_dir():
        why = readable.problem(root)   # a link loop or a FIFO is said as such
        if why == "does not exist":
            raise DataError(f"image folder not found: {root}", key=key)
        raise DataError(f"{root} {why or 'is a file; give the folder that holds one sub-folder per class'}", key=key)
    return root


def check_folder(root: Path, key: str, channels: int = 0, within: Path | None = None) -> list[str]:
    """The class names (sorted sub-folders, as Keras lists them); every image file must be a regular file inside
    `within` (default: `root`; the data folder behind data.skip_bad_images's linked copy) that TensorFlow decodes
    whole."""
    classes = [p.name for p in readable.subfolders(root, key)]
    if len(classes) < 2:
        raise DataError(f"{root} needs one sub-folder per class (at least 2); found {classes or 'none'}", key=key)
    files: list[Path] = []
    for name in classes:
        found = images_in(root / name, key, within or root)
        if not found:
            raise DataError(f"{root / name} holds no images ({', '.join(EXTENSIONS)})", key=key)
        files += found
    check_images(files, key, channels)
    return classes


def check_images(files: list[Path], key: str, channels: int = 0) -> None:
    """Every file must be a JPEG, PNG, GIF or BMP image that decodes whole: the first that is not is one line."""
    bad = bad_images(files, channels)
    if bad:
        file, problem = next(iter(bad.items()))
        hint = " (or set data.skip_bad_images: true to leave such files out)" if key.startswith("data") else ""
        more = f" (and {len(bad) - 1} more bad image file(s))" if len(bad) > 1 else ""
        raise DataError(f"{file} {problem}{more}; remove it or replace it{hint}", key=key)


def bad_images(files: list[Path], channels: int = 0) -> dict[Path, str]:
    """The files that are not images Keras can read, in the order given, each with what is wrong: not a known
    format by its first bytes, or (decoded once, in full, as image_dataset_from_directory will) damaged or cut
    short; TensorFlow would otherwise fail mid-epoch without naming the file."""
    problems = {f: problem for f in files if (problem := _problem(f)) is not None}
    failed = _undecodable([f for f in files if f not in problems], channels)
    whole = set(failed) - set(_undecodable(failed, 0)) if channels and failed else set()   # as stored, they decode
    for file in failed:
        problems[file] = (f"decodes, but not to {channels} channel(s) as data.color_mode asks (a GIF reads as rgb "
                          "only): convert it, or change data.color_mode" if file in whole else
                          "is damaged or cut short: it does not decode as an image")
    return {f: problems[f] for f in files if f in problems}


def _undecodable(files: list[Path], channels: int) -> list[Path]:
    """The files tf.io.decode_image (Keras's decoder, to `channels` as Keras asks; 0: as stored) fails on, each
    decoded once, in parallel."""
    if not files:
        return []
    import tensorflow as tf

    def decode(name: Any) -> Any:
        image = tf.io.decode_image(tf.io.read_file(name), channels=channels, expand_animations=False)
        return name, tf.size(image)   # the size needs the whole decode

    names = tf.data.Dataset.from_tensor_slices([str(f) for f in files])
    decoded = names.map(decode, num_parallel_calls=tf.data.AUTOTUNE).ignore_errors()
    good = {name.decode() for name, _ in decoded.as_numpy_iterator()}
    return [f for f in files if str(f) not in good]


def _problem(file: Path) -> str | None:
    """What is wrong with an image file by its first bytes, or None."""
    try:
        with readable.open_regular(file) as fh:   # a FIFO named x.png would block an open()
            head = fh.read(8)
    except OSError as exc:
        return f"cannot be read ({exc.strerror})"
    if not head:
        return "is empty, not an image"
    if not head.startswith(_MAGIC):
        return "is not a JPEG, PNG, GIF or BMP image (damaged, or another format with an image name)"
    return None


def images_in(folder: Path, key: str, root: Path | None = None) -> list[Path]:
    """The image files under a folder (any depth, sorted), as image_dataset_from_directory finds them; a link
    out of `root` (default: `folder`), a link loop or a file that is not a regular file is one line naming it."""
    return readable.files_under(folder, key, EXTENSIONS, root)


def image_files(path: Path, key: str) -> list[Path]:
    """The images to predict: one file, or every image under a folder (sorted)."""
    if path.is_file():
        files = [path]
    elif path.is_dir():
        files = images_in(path, key)
        if not files:
            raise DataError(f"{path} holds no images ({', '.join(EXTENSIONS)})", key=key)
    else:
        raise DataError(f"not found: {path}", key=key)
    check_images(files, key)
    return files


CHANNELS = {"grayscale": 1, "rgb": 3, "rgba": 4}


def read_images(files: list[Path], data: Any) -> Any:
    """The images as one float32 batch, decoded and resized as image_dataset_from_directory does it
    (tf.image.decode_image + tf.image.resize), so predictions see what training saw."""
    import numpy as np
    import tensorflow as tf

    return np.stack([decode_image(tf.io.read_file(str(f)), data) for f in files]).astype("float32")


def decode_image(content: Any, data: Any) -> Any:
    """One image's bytes decoded and resized as training read them (a numpy array; `kcli serve` uses it too)."""
    return image_tensor(content, data).numpy()


def image_tensor(content: Any, data: Any) -> Any:
    """decode_image as TensorFlow ops (also inside a traced function: the serving export's signature)."""
    import tensorflow as tf

    image = tf.image.decode_image(content, channels=CHANNELS[data.color_mode], expand_animations=False)
    image.set_shape([None, None, CHANNELS[data.color_mode]])
    return tf.image.resize(image, tuple(data.image_size), method=data.interpolation)
