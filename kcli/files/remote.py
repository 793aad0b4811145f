"""Object storage (s3://, gs://, any URL pyarrow.fs opens): the one owner of URLs as data paths.

Readers downstream want local files (numpy, TensorFlow), so an object is read by copying it once into a staging
folder of this process (`local_copy`, `local_folder` for a prefix), except a streamed table's, which pyarrow reads
block by block from the store (`open_input`, `read_retried`); what kcli writes to a URL is written locally first
and uploaded when complete (`upload_after`). Credentials come from the standard environment and config
files only (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_PROFILE, AWS_REGION,
AWS_ENDPOINT_URL, GOOGLE_APPLICATION_CREDENTIALS); a URL that carries them is refused, so a URL kcli records
(config.yaml, run.json, MLflow) never holds a secret. Every failure is one KcliError line naming the key and URL.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from kcli.errors import DataError, KcliError, cut, first_line
from kcli.files import readable

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
BUCKETS = ("s3", "gs", "gcs")        # schemes whose first path part is a bucket
CONNECT_TIMEOUT = 10.0               # seconds: an unreachable endpoint is an error, not a hang
REQUEST_TIMEOUT = 60.0
ATTEMPTS = 3                         # pyarrow's retries of a failed request
CHUNK = 8 << 20                      # bytes per read while copying
STREAM_READ = 16 << 20               # bytes per request while streaming an object
RETRY_WAIT = 1.0                     # seconds before reading an object again after a store error (doubled each time)
_SECRET_PARAMS = ("access_key", "secret_key", "session_token", "credential", "token", "password")
_ENV_SECRETS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
_DENIED = ("ACCESS_DENIED", "INVALID_ACCESS_KEY_ID", "SIGNATURE_DOES_NOT_MATCH", "Forbidden", "PERMISSION_DENIED",
           "Unauthorized", "EXPIRED_TOKEN")
_UNREACHABLE = ("NETWORK_CONNECTION", "curlCode", "Could not connect", "Could not resolve", "timed out",
                "Connection refused", "UNAVAILABLE")


@dataclass(frozen=True)
class Info:
    """One object: its URL, size in bytes and modification time (ISO text, or None when the store has none)."""

    url: str
    size: int
    mtime: str | None

    def __str__(self) -> str:   # messages about an object read straight from the store name its URL
        return self.url


def is_url(text: object) -> bool:
    """Whether a data path is a URL (`scheme://...`) rather than a local path."""
    return isinstance(text, str) and _SCHEME.match(text) is not None


def scheme(url: str) -> str:
    """The URL's scheme, lower case (`s3`)."""
    match = _SCHEME.match(url)
    return match.group(1).lower() if match else ""


def _checked(url: str, key: str, error: type[KcliError]) -> None:
    """A URL may not carry credentials: kcli records its data paths, and a secret must never be written."""
    parts = urlsplit(url)
    secrets = [p for p in parse_qs(parts.query) if any(s in p.lower() for s in _SECRET_PARAMS)]
    if "@" in parts.netloc or secrets:
        raise error(f"{scheme(url)}://{parts.hostname or ''}/...: the URL holds credentials; give them in the "
                    "environment instead (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_PROFILE, or "
                    "GOOGLE_APPLICATION_CREDENTIALS): kcli writes its data paths into the run", key=key)


def endpoint() -> str | None:
    """The S3 endpoint from the environment (AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL), None for AWS itself."""
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None


def _filesystem(url: str, key: str, error: type[KcliError]) -> tuple[Any, str]:
    """(the pyarrow filesystem, the path inside it) for a URL; an S3 URL with a configured endpoint or region
    gets kcli's timeouts and retries (pyarrow's own S3FileSystem() reads neither AWS_ENDPOINT_URL nor
    AWS_REGION; from_uri resolves the bucket's region with one more request)."""
    import pyarrow as pa
    import pyarrow.fs as pafs

    _checked(url, key, error)
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    try:
        if scheme(url) == "s3" and (endpoint() or region):
            fs = pafs.S3FileSystem(region=region, endpoint_override=endpoint(), connect_timeout=CONNECT_TIMEOUT,
                                   request_timeout=REQUEST_TIMEOUT,
                                   retry_strategy=pafs.AwsStandardS3RetryStrategy(max_attempts=ATTEMPTS))
            return fs, urlsplit(url)._replace(scheme="", query="", fragment="").geturl().lstrip("/")
        return pafs.FileSystem.from_uri(url)
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise error(f"cannot open {url}: {_reason(exc, url)}", key=key) from None


def _reason(exc: BaseException, url: str) -> str:
    """What went wrong in a word a user acts on (the store's own text, secrets masked, as detail)."""
    text = first_line(exc)
    for name in _ENV_SECRETS:
        if os.environ.get(name):
            text = text.replace(os.environ[name], "***")
    if "NO_SUCH_BUCKET" in text or "bucket does not exist" in text:
        return f"the bucket {_bucket(url)} does not exist"
    if any(word in text for word in _DENIED):
        return ("access denied: check the credentials (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_PROFILE, "
                "or GOOGLE_APPLICATION_CREDENTIALS) and what they may read")
    if any(word in text for word in _UNREACHABLE):
        where = endpoint() if scheme(url) == "s3" and endpoint() else "the store"
        detail = text.split("Details:", 1)[-1].strip() if "Details:" in text else text
        return f"cannot reach {where} ({cut(detail, 120)})"
    return cut(text, 200)


def _bucket(url: str) -> str:
    return urlsplit(url).netloc


@contextlib.contextmanager
def _calling(url: str, key: str, error: type[KcliError]) -> Iterator[None]:
    """pyarrow's errors as one line naming `key` and the URL."""
    import pyarrow as pa

    try:
        yield
    except (pa.ArrowException, OSError) as exc:
        raise error(f"{url}: {_reason(exc, url)}", key=key) from None


def _info(info: Any, url: str) -> Info:
    mtime = info.mtime.isoformat() if info.mtime is not None else None
    return Info(url, int(info.size or 0), mtime)


def _url_of(url: str, path: str) -> str:
    """The URL of `path` (a path inside the URL's filesystem: `bucket/key` for a bucket store)."""
    return f"{scheme(url)}://{path}"


def files(url: str, key: str, suffixes: tuple[str, ...] = (), error: type[KcliError] = DataError) -> list[Info]:
    """The objects a data URL names: the object itself, the objects directly under a prefix (folder) whose names
    end in `suffixes` (any when empty), or those a glob matches; sorted by name, hidden names left out. A missing
    bucket or object, denied access or an unreachable store is one line naming `key` and the URL."""
    import pyarrow.fs as pafs

    fs, path = _filesystem(url, key, error)
    with _calling(url, key, error):
        if any(c in path for c in readable.GLOB_CHARACTERS):
            found = _globbed(fs, path)
        else:
            path = path.rstrip("/")
            info = fs.get_file_info(path)
            if info.type == pafs.FileType.File:
                return [_info(info, url)]
            if info.type == pafs.FileType.NotFound:
                _missing(fs, path, url, key, error)
            found = fs.get_file_info(pafs.FileSelector(path, recursive=False))
            found = [f for f in found if f.type == pafs.FileType.File
                     and (not suffixes or f.base_name.lower().endswith(suffixes))]
        found = [f for f in found if not f.base_name.startswith(".")]
    if not found:
        what = f"no {' / '.join(suffixes)} objects" if suffixes else "no objects"
        raise error(f"{url} names {what}", key=key)
    return [_info(f, _url_of(url, f.path)) for f in sorted(found, key=lambda f: f.path)]


def _globbed(fs: Any, pattern: str) -> list[Any]:
    """The files under a glob's fixed leading prefix that match it (`**`: any number of folders)."""
    import pyarrow.fs as pafs

    parts = pattern.split("/")
    fixed = next(i for i, part in enumerate(parts) if any(c in part for c in readable.GLOB_CHARACTERS))
    root = "/".join(parts[:fixed])
    deep = "**" in parts[fixed:] or len(parts) - fixed > 1
    listed = fs.get_file_info(pafs.FileSelector(root, recursive=deep, allow_not_found=True))
    wanted = parts[fixed:]
    return [f for f in listed if f.type == pafs.FileType.File
            and readable.glob_match(tuple(f.path[len(root):].lstrip("/").split("/")), wanted)]


def _missing(fs: Any, path: str, url: str, key: str, error: type[KcliError]) -> None:
    """Neither an object nor a prefix: say whether the bucket or the object is missing."""
    import pyarrow.fs as pafs

    if scheme(url) in BUCKETS and fs.get_file_info(path.split("/")[0]).type == pafs.FileType.NotFound:
        raise error(f"{url}: the bucket {_bucket(url)} does not exist", key=key)
    raise error(f"not found: {url} (no such object or prefix in the bucket)", key=key)


def exists(url: str, key: str, error: type[KcliError] = DataError) -> bool:
    """Whether an object or a prefix is at `url` (a missing bucket, denied access, no store: one line)."""
    import pyarrow.fs as pafs

    fs, path = _filesystem(url, key, error)
    with _calling(url, key, error):
        if fs.get_file_info(path).type != pafs.FileType.NotFound:
            return True
        if scheme(url) in BUCKETS and fs.get_file_info(path.split("/")[0]).type == pafs.FileType.NotFound:
            raise error(f"{url}: the bucket {_bucket(url)} does not exist", key=key)
    return False


_staging: Path | None = None
_copies: dict[Info, Path] = {}
_uploads: dict[Path, str] = {}   # temporary local files written for a URL (kept: an error may name one later)
_folders: dict[Path, str] = {}   # local copies of prefixes (image folders)


def _staging_folder() -> Path:
    """This process's folder of copied objects, removed when it exits."""
    global _staging
    if _staging is None:
        _staging = Path(tempfile.mkdtemp(prefix="kcli-objects-"))
        atexit.register(shutil.rmtree, _staging, True)
    return _staging


def local_copy(url: str, key: str, error: type[KcliError] = DataError) -> Path:
    """A local copy of the one object at `url` (named as the object), made once per process and version."""
    found = files(url, key, (), error)
    if len(found) != 1 or found[0].url != url:
        raise error(f"{url} is a prefix (a folder), not one object; name the file", key=key)
    return local_copies(found, key, error)[0]


def local_file(path: str, key: str, error: type[KcliError] = DataError) -> Path:
    """A data file to read: a local path as given (a FIFO or a device is one line, never opened), or the local
    copy of a URL's one object."""
    if is_url(path):
        return local_copy(path, key, error)
    readable.present(Path(path), key, error)
    return Path(path)


def staged(root: Path, name: str, url: str, key: str, error: type[KcliError] = DataError) -> Path:
    """Where the copy of an object named `name` (its key, or its key under the prefix) goes under `root`; a key
    with `..` segments, which a store allows, would lead out of the staging folder: refused."""
    local = (root / name.lstrip("/")).resolve()
    if not local.is_relative_to(root.resolve()):
        raise error(f"{url}: the object's key leads out of the folder it is copied into ('..' in it); rename the "
                    "object", key=key)
    return local


def local_copies(objects: list[Info], key: str, error: type[KcliError] = DataError) -> list[Path]:
    """Local copies of `objects` (as `files` listed them), each downloaded once per process and version."""
    return [_copy(info, key, error) for info in objects]


def _copy(info: Info, key: str, error: type[KcliError]) -> Path:
    if info in _copies and _copies[info].is_file():
        return _copies[info]
    parts = urlsplit(info.url)
    local = staged(_staging_folder() / str(len(_copies)), f"{scheme(info.url)}/{parts.netloc}{parts.path}",
                   info.url, key, error)
    local.parent.mkdir(parents=True, exist_ok=True)
    fs, path = _filesystem(info.url, key, error)
    with _calling(info.url, key, error), fs.open_input_stream(path) as src, open(local, "wb") as dst:
        while block := src.read(CHUNK):
            dst.write(block)
    _copies[info] = local
    return local


def open_input(info: Info, random_access: bool = False) -> Any:
    """The object as a pyarrow input file, read straight from the store (random access: Parquet's footer first);
    pyarrow's errors are left to the caller (`read_retried`)."""
    import pyarrow as pa

    fs, path = _filesystem(info.url, "data.path", DataError)
    if random_access:
        return fs.open_input_file(path)
    # one ranged GET per read: the CSV reader's 1 MiB reads would cost a round trip per MiB
    return pa.BufferedInputStream(fs.open_input_stream(path), STREAM_READ)


def read_retried(info: Info, key: str, read: Callable[[], Iterator[Any]]) -> Iterator[Any]:
    """What `read` yields from one object; after a store error (an OSError: a bad row is not one) it is read again
    from the start, the items already given skipped, up to ATTEMPTS times with a doubling wait; then one line
    naming `key` and the URL (a vanished object: the line a vanished local file gives)."""
    given = 0
    for attempt in range(1, ATTEMPTS + 1):
        try:
            for i, item in enumerate(read()):
                if i >= given:
                    given += 1
                    yield item
            return
        except FileNotFoundError:
            raise DataError(f"{info.url} is gone (it was there when the run began)", key=key) from None
        except OSError as exc:
            if attempt == ATTEMPTS:
                raise DataError(f"{info.url}: {_reason(exc, info.url)} (read {ATTEMPTS} times)", key=key) from None
            time.sleep(RETRY_WAIT * 2 ** (attempt - 1))


def local_folder(url: str, key: str, suffixes: tuple[str, ...], error: type[KcliError] = DataError) -> Path:
    """A local copy of every object under a prefix (sub-prefixes as folders, e.g. one per class of an image
    folder) whose name ends in `suffixes`; refused in one line when the listed total does not fit the disk."""
    import pyarrow.fs as pafs

    fs, path = _filesystem(url, key, error)
    with _calling(url, key, error):
        path = path.rstrip("/")
        if fs.get_file_info(path).type == pafs.FileType.NotFound:
            _missing(fs, path, url, key, error)
        listed = [f for f in fs.get_file_info(pafs.FileSelector(path, recursive=True))
                  if f.type == pafs.FileType.File and f.base_name.lower().endswith(suffixes)
                  and not any(part.startswith(".") for part in f.path[len(path):].split("/"))]
    if not listed:
        raise error(f"{url} holds no {' / '.join(suffixes)} objects", key=key)
    total, free = sum(int(f.size or 0) for f in listed), shutil.disk_usage(_staging_folder()).free
    if total > free:
        raise error(f"{url}: its {total / 1e6:,.1f} MB do not fit the temporary folder ({free / 1e6:,.1f} MB free "
                    f"under {_staging_folder().parent}); set TMPDIR to a larger disk", key=key)
    root = _staging_folder() / f"folder-{len(_folders)}"
    for f in sorted(listed, key=lambda f: f.path):
        local = staged(root, f.path[len(path):], f"{url.rstrip('/')}/{f.path[len(path):].lstrip('/')}", key, error)
        local.parent.mkdir(parents=True, exist_ok=True)
        with _calling(url, key, error), fs.open_input_stream(f.path) as src, open(local, "wb") as dst:
            while block := src.read(CHUNK):
                dst.write(block)
    _folders[root] = url.rstrip("/")
    return root


@contextlib.contextmanager
def named_as_urls() -> Iterator[None]:
    """A KcliError raised about a local copy (or a file written for upload) names the URL instead (the local
    file is kcli's business)."""
    try:
        yield
    except KcliError as exc:
        for local, url in [*((p, i.url) for i, p in _copies.items()), *_uploads.items(), *_folders.items()]:
            exc.message = exc.message.replace(str(local), url)
        raise


@contextlib.contextmanager
def upload_after(url: str, key: str, error: type[KcliError] = DataError) -> Iterator[Path]:
    """A local path named as the URL's last part, in a fresh temporary folder: what the block writes there (a
    file, or a folder such as a SavedModel) is uploaded to `url` when the block ends without an error."""
    fs, path = _filesystem(url, key, error)
    name = path.rstrip("/").rsplit("/", 1)[-1]
    with tempfile.TemporaryDirectory(prefix="kcli-upload-") as folder:
        local = Path(folder) / name
        _uploads[local] = url
        yield local
        with _calling(url, key, error):
            _upload(fs, local, path.rstrip("/"))


def _upload(fs: Any, local: Path, path: str) -> None:
    """A file, or every file under a folder (same relative names), written to `path` in the store."""
    items = [(local, path)] if local.is_file() else [
        (f, f"{path}/{f.relative_to(local).as_posix()}") for f in sorted(local.rglob("*")) if f.is_file()]
    for source, target in items:
        with open(source, "rb") as src, fs.open_output_stream(target) as dst:
            while block := src.read(CHUNK):
                dst.write(block)
