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
`kcli predict` writes them. Every file Keras would read is checked first: an empty file or one that is not a
JPEG, PNG, GIF or BMP is one line naming it (TensorFlow would fail mid-epoch without saying which file).
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path
from typing import Any

from kcli.data.python_source import Stream, stream_of
from kcli.errors import DataError
from kcli.ports import Ports

HINT = "Make data.image_size (and color_mode: grayscale 1, rgb 3, rgba 4 channels) match model.input_shape"
EXTENSIONS = (".jpeg", ".jpg", ".png", ".bmp", ".gif")   # what image_dataset_from_directory reads
_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM")


def load(data: Any, seed: int, ports: Ports) -> tuple[Stream, Stream | None, Stream | None, list[str], list[str]]:
    """(train, validation, test, class names, notes: the bad images skipped)."""
    notes: list[str] = []
    root = _good_images(_folder(data.path, "data.path"), data, notes)
    classes = check_folder(root, "data.path")
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
    bad = [f for f in images_in(root) if _problem(f) is not None]
    if not bad:
        return root
    shown = ", ".join(str(f.relative_to(root)) for f in bad[:3]) + (", ..." if len(bad) > 3 else "")
    notes.append(f"skipped {len(bad)} file(s) of {root} that are not images (data.skip_bad_images): {shown}")
    linked = Path(tempfile.mkdtemp(prefix="kcli-images-"))
    atexit.register(shutil.rmtree, linked, True)
    skip = set(bad)
    for file in images_in(root):
        if file not in skip:
            target = linked / file.relative_to(root)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(file.resolve())
    for folder in (p for p in root.iterdir() if p.is_dir()):
        (linked / folder.name).mkdir(exist_ok=True)   # a class whose images are all bad stays a class
    return linked


def _split_dataset(path: str | None, data: Any, seed: int, classes: list[str], key: str,
                   notes: list[str] | None = None) -> Any:
    root = _good_images(_folder(path, f"{key}.path"), data, notes if notes is not None else [])
    found = check_folder(root, f"{key}.path")
    if found != classes:
        raise DataError(f"{root} has the classes {found}; the training folder has {classes}", key=f"{key}.path")
    return _dataset(root, data, seed, shuffle=False)


def _dataset(root: Path, data: Any, seed: int, split: float | None = None, subset: str | None = None,
             shuffle: bool = True) -> Any:
    import keras

    return keras.utils.image_dataset_from_directory(
        str(root), labels="inferred", label_mode="int", color_mode=data.color_mode, batch_size=data.batch_size,
        image_size=tuple(data.image_size), shuffle=shuffle, seed=seed, validation_split=split, subset=subset,
        interpolation=data.interpolation, verbose=False)


def _folder(path: str | None, key: str) -> Path:
    root = Path(path or "")
    if not root.is_dir():
        raise DataError(f"image folder not found: {root}" if not root.exists() else
                        f"{root} is a file; give the folder that holds one sub-folder per class", key=key)
    return root


def check_folder(root: Path, key: str) -> list[str]:
    """The class names (sorted sub-folders); every image file must look like an image."""
    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    if len(classes) < 2:
        raise DataError(f"{root} needs one sub-folder per class (at least 2); found {classes or 'none'}", key=key)
    for name in classes:
        files = images_in(root / name)
        if not files:
            raise DataError(f"{root / name} holds no images ({', '.join(EXTENSIONS)})", key=key)
        for file in files:
            check_image(file, key)
    return classes


def check_image(file: Path, key: str) -> None:
    """An image file must start like a JPEG, PNG, GIF or BMP."""
    problem = _problem(file)
    if problem is not None:
        hint = " (or set data.skip_bad_images: true to leave such files out)" if key.startswith("data") else ""
        raise DataError(f"{file} {problem}; remove it or replace it{hint}", key=key)


def _problem(file: Path) -> str | None:
    """What is wrong with an image file, or None."""
    try:
        with file.open("rb") as fh:
            head = fh.read(8)
    except OSError as exc:
        return f"cannot be read ({exc.strerror})"
    if not head:
        return "is empty, not an image"
    if not head.startswith(_MAGIC):
        return "is not a JPEG, PNG, GIF or BMP image (damaged, or another format with an image name)"
    return None


def images_in(folder: Path) -> list[Path]:
    """The image files under a folder (any depth, sorted), as image_dataset_from_directory finds them."""
    return sorted(f for f in folder.rglob("*") if f.suffix.lower() in EXTENSIONS and f.is_file())


def image_files(path: Path, key: str) -> list[Path]:
    """The images to predict: one file, or every image under a folder (sorted)."""
    if path.is_file():
        files = [path]
    elif path.is_dir():
        files = images_in(path)
        if not files:
            raise DataError(f"{path} holds no images ({', '.join(EXTENSIONS)})", key=key)
    else:
        raise DataError(f"not found: {path}", key=key)
    for file in files:
        check_image(file, key)
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
