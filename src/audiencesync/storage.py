"""Shared storage: where imported datasets, uploads, confirmed snapshots and journals live.

``AUDIENCESYNC_STORAGE_URL`` names it: unset (the default) it is the home folder, exactly
as before; a local folder (a path or ``file://`` URL) for a disk several processes share;
``s3://bucket/prefix`` for an S3-compatible bucket that workers on several machines share
(``AUDIENCESYNC_STORAGE_ENDPOINT_URL`` for a server other than AWS; credentials from the
standard ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` / ``AWS_SESSION_TOKEN``
variables or the machine's role, read by Arrow's S3 filesystem).

Callers name objects by *keys*, paths relative to the storage root with ``/``
(``exports/3/audiences/42/journal/...parquet``). The two kinds keep one promise: an object
written by :meth:`Storage.put_file`, :meth:`Storage.write_bytes` or
:meth:`Storage.write_query` is either whole or absent, and durable when the call returns
(local: written under a temporary name, fsynced, renamed; S3: the upload completed).
DuckDB reads objects through :meth:`Storage.scan`: a local file by its path, an object in
a bucket through a registered Arrow dataset over Arrow's S3 filesystem (DuckDB's own
``httpfs`` extension cannot be downloaded on these machines).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

import duckdb
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from audiencesync.errors import UserInputError

#: Marks a folder published to object storage as complete (see ``publish_folder``).
COMPLETE = ".complete"

_names = itertools.count(1)


def parquet_options(schema: pa.Schema) -> dict[str, object]:
    """``ParquetWriter`` options for files of hashes and identifiers: written to be read
    once or a few times, so no compression and no dictionaries (random 64-hex hashes do
    not repeat; building a dictionary of them took most of a write)."""
    return {
        "schema": schema,
        "compression": "none",
        "use_dictionary": False,
        "write_statistics": False,
    }


def _copy_sql(query: str, target: Path, metadata: dict[str, str] | None) -> str:
    extra = ""
    if metadata:
        pairs = ", ".join(
            f"'{k.replace(chr(39), chr(39) * 2)}': '{v.replace(chr(39), chr(39) * 2)}'"
            for k, v in metadata.items()
        )
        extra = f", KV_METADATA {{{pairs}}}"
    return f"COPY ({query}) TO '{target}' (FORMAT parquet, COMPRESSION uncompressed{extra})"


@dataclass(frozen=True, slots=True)
class Entry:
    """One object found by :meth:`Storage.list`: its key, name and a version key that
    changes whenever the object is replaced."""

    key: str
    name: str
    size: int
    version: str
    #: when it was last written, in seconds since the epoch.
    modified: float


class Storage(Protocol):
    """The operations the engine needs of shared storage (local folder or bucket)."""

    @property
    def url(self) -> str:
        """Where it is, for messages and documents (never holds a credential)."""
        ...

    @property
    def is_local(self) -> bool: ...

    def local_path(self, key: str) -> Path | None:
        """The file of ``key`` on this machine's disk, or None for object storage."""
        ...

    def location(self, key: str) -> str:
        """``key`` as a full path or URL, for records such as a dataset's source."""
        ...

    def key_of(self, location: str) -> str | None:
        """The key of a location :meth:`location` gave, or None when it is elsewhere."""
        ...

    def exists(self, key: str) -> bool: ...

    def listing(self, prefix: str) -> list[Entry]:
        """The objects directly under ``prefix`` (no sub-folders), temporary files too."""
        ...

    def folders(self, prefix: str) -> list[str]:
        """The names of the folders directly under ``prefix``."""
        ...

    def put_file(self, source: Path, key: str, *, move: bool = False) -> None:
        """Store a local file as ``key``, whole and durable; ``move`` may take the file."""
        ...

    def get_file(self, key: str, target: Path) -> None:
        """Copy object ``key`` to a local file."""
        ...

    def write_bytes(self, key: str, data: bytes) -> None: ...

    def read_bytes(self, key: str) -> bytes: ...

    def delete(self, key: str) -> None:
        """Delete one object; a missing one is fine."""
        ...

    def delete_tree(self, prefix: str) -> None:
        """Delete every object under ``prefix``; a missing folder is fine."""
        ...

    def copy(self, source: str, target: str) -> None:
        """Object ``source`` as ``target`` too (whole or absent)."""
        ...

    def rename(self, source: str, target: str) -> None:
        """Object ``source`` becomes ``target`` (replacing it whole)."""
        ...

    def open_input(self, key: str) -> pa.NativeFile:
        """Object ``key`` open for reading (random access), to be closed by the caller."""
        ...

    def write_parquet(
        self, key: str, schema: pa.Schema, parts: Iterable[pa.RecordBatch | pa.Table]
    ) -> None:
        """Parquet object ``key`` of ``parts`` (uncompressed, no dictionaries: hashes and
        identifiers written to be read once or a few times), whole and durable."""
        ...

    def scan(self, con: duckdb.DuckDBPyConnection, key: str) -> str:
        """A DuckDB table expression reading the Parquet object ``key`` on ``con``."""
        ...

    def dataset(self, key: str) -> pads.Dataset:
        """An Arrow dataset over the Parquet object ``key``."""
        ...

    def write_query(
        self,
        con: duckdb.DuckDBPyConnection,
        query: str,
        key: str,
        metadata: dict[str, str] | None = None,
    ) -> None:
        """``COPY (query)`` to the Parquet object ``key`` (uncompressed, with ``metadata``
        as the file's key-value metadata), whole and durable."""
        ...

    def publish_folder(self, files: dict[str, Path], key: str) -> None:
        """Local files as the folder ``key``, which is complete or absent after any crash."""
        ...

    def folder_complete(self, key: str) -> bool:
        """Whether ``publish_folder`` finished the folder ``key``."""
        ...


def _fsync(path: Path) -> None:
    with path.open("rb") as handle:
        os.fsync(handle.fileno())


class LocalStorage:
    """A folder on this machine's disk (the home folder by default)."""

    is_local = True

    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def url(self) -> str:
        return str(self.root)

    def path(self, key: str) -> Path:
        return self.root / key

    def local_path(self, key: str) -> Path | None:
        return self.root / key

    def location(self, key: str) -> str:
        return str(self.root / key)

    def key_of(self, location: str) -> str | None:
        path = Path(location)
        if path.is_absolute() and path.is_relative_to(self.root):
            return path.relative_to(self.root).as_posix()
        return None

    def exists(self, key: str) -> bool:
        return (self.root / key).exists()

    def listing(self, prefix: str) -> list[Entry]:
        found = []
        folder = self.root / prefix
        try:
            children = list(folder.iterdir())
        except (FileNotFoundError, NotADirectoryError):
            return []
        for path in children:
            try:
                info = path.stat()
            except FileNotFoundError:
                continue
            if path.is_dir():
                continue
            version = f"{info.st_ino} {info.st_size} {info.st_mtime_ns}"
            found.append(
                Entry(f"{prefix}/{path.name}", path.name, info.st_size, version, info.st_mtime)
            )
        return found

    def folders(self, prefix: str) -> list[str]:
        try:
            return [p.name for p in (self.root / prefix).iterdir() if p.is_dir()]
        except (FileNotFoundError, NotADirectoryError):
            return []

    def _temporary(self, target: Path) -> Path:
        target.parent.mkdir(parents=True, exist_ok=True)
        return target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")

    def put_file(self, source: Path, key: str, *, move: bool = False) -> None:
        target = self.root / key
        temporary = self._temporary(target)
        if move:
            try:
                source.replace(temporary)
            except OSError:  # another file system: copy
                shutil.copyfile(source, temporary)
                source.unlink(missing_ok=True)
        else:
            shutil.copyfile(source, temporary)
        _fsync(temporary)
        temporary.replace(target)

    def get_file(self, key: str, target: Path) -> None:
        shutil.copyfile(self.root / key, target)

    def write_bytes(self, key: str, data: bytes) -> None:
        target = self.root / key
        temporary = self._temporary(target)
        temporary.write_bytes(data)
        _fsync(temporary)
        temporary.replace(target)

    def read_bytes(self, key: str) -> bytes:
        return (self.root / key).read_bytes()

    def delete(self, key: str) -> None:
        (self.root / key).unlink(missing_ok=True)

    def delete_tree(self, prefix: str) -> None:
        shutil.rmtree(self.root / prefix, ignore_errors=True)

    def copy(self, source: str, target: str) -> None:
        self.put_file(self.root / source, target)

    def rename(self, source: str, target: str) -> None:
        (self.root / source).replace(self.root / target)

    def open_input(self, key: str) -> pa.NativeFile:
        return pa.OSFile(str(self.root / key), "rb")

    def write_parquet(
        self, key: str, schema: pa.Schema, parts: Iterable[pa.RecordBatch | pa.Table]
    ) -> None:
        target = self.root / key
        temporary = self._temporary(target)
        with pq.ParquetWriter(temporary, **parquet_options(schema)) as writer:
            for part in parts:
                if isinstance(part, pa.Table):
                    writer.write_table(part)
                else:
                    writer.write_batch(part)
        _fsync(temporary)
        temporary.replace(target)

    def scan(self, con: duckdb.DuckDBPyConnection, key: str) -> str:
        del con  # DuckDB reads local files itself
        return f"read_parquet('{self.root / key}')"

    def dataset(self, key: str) -> pads.Dataset:
        return pads.dataset(self.root / key, format="parquet")

    def write_query(
        self,
        con: duckdb.DuckDBPyConnection,
        query: str,
        key: str,
        metadata: dict[str, str] | None = None,
    ) -> None:
        target = self.root / key
        temporary = self._temporary(target)
        con.execute(_copy_sql(query, temporary, metadata))
        _fsync(temporary)
        temporary.replace(target)

    def publish_folder(self, files: dict[str, Path], key: str) -> None:
        target = self.root / key
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
        staging.mkdir()
        for name, source in files.items():
            shutil.copyfile(source, staging / name)
            _fsync(staging / name)
        staging.replace(target)

    def folder_complete(self, key: str) -> bool:
        return (self.root / key).is_dir()


class ObjectStorage:
    """A prefix in an S3-compatible bucket, through Arrow's S3 filesystem.

    Objects are written whole by one upload (a multipart upload appears only when it
    completes), so no temporary names are needed; a rename is a copy and a delete.
    """

    is_local = False

    def __init__(self, url: str, filesystem: pafs.FileSystem, base: str, scratch: Path) -> None:
        self._url = url.rstrip("/")
        self.fs = filesystem
        self.base = base.strip("/")
        #: a local folder for files on their way to or from the bucket.
        self.scratch = scratch

    @property
    def url(self) -> str:
        return self._url

    def path(self, key: str) -> str:
        return f"{self.base}/{key}" if key else self.base

    def local_path(self, key: str) -> Path | None:
        return None

    def location(self, key: str) -> str:
        return f"{self._url}/{key}"

    def key_of(self, location: str) -> str | None:
        prefix = self._url + "/"
        return location[len(prefix) :] if location.startswith(prefix) else None

    def exists(self, key: str) -> bool:
        return bool(self.fs.get_file_info(self.path(key)).type == pafs.FileType.File)

    def _infos(self, prefix: str) -> list[pafs.FileInfo]:
        selector = pafs.FileSelector(self.path(prefix), allow_not_found=True, recursive=False)
        return list(self.fs.get_file_info(selector))

    def listing(self, prefix: str) -> list[Entry]:
        found = []
        for info in self._infos(prefix):
            if info.type != pafs.FileType.File:
                continue
            mtime = info.mtime_ns or 0
            key = f"{prefix}/{info.base_name}"
            version = f"{info.size} {mtime}"
            found.append(Entry(key, info.base_name, info.size, version, mtime / 1e9))
        return found

    def folders(self, prefix: str) -> list[str]:
        return [i.base_name for i in self._infos(prefix) if i.type == pafs.FileType.Directory]

    def put_file(self, source: Path, key: str, *, move: bool = False) -> None:
        pafs.copy_files(
            str(source),
            self.path(key),
            source_filesystem=pafs.LocalFileSystem(),
            destination_filesystem=self.fs,
            chunk_size=8 << 20,
        )
        if move:
            source.unlink(missing_ok=True)

    def get_file(self, key: str, target: Path) -> None:
        pafs.copy_files(
            self.path(key),
            str(target),
            source_filesystem=self.fs,
            destination_filesystem=pafs.LocalFileSystem(),
            chunk_size=8 << 20,
        )

    def write_bytes(self, key: str, data: bytes) -> None:
        with self.fs.open_output_stream(self.path(key)) as stream:
            stream.write(data)

    def read_bytes(self, key: str) -> bytes:
        with self.fs.open_input_stream(self.path(key)) as stream:
            return bytes(stream.read())

    def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.fs.delete_file(self.path(key))

    def delete_tree(self, prefix: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.fs.delete_dir(self.path(prefix))

    def copy(self, source: str, target: str) -> None:
        self.fs.copy_file(self.path(source), self.path(target))

    def rename(self, source: str, target: str) -> None:
        self.fs.copy_file(self.path(source), self.path(target))
        self.delete(source)

    def open_input(self, key: str) -> pa.NativeFile:
        return self.fs.open_input_file(self.path(key))

    def write_parquet(
        self, key: str, schema: pa.Schema, parts: Iterable[pa.RecordBatch | pa.Table]
    ) -> None:
        # The object appears when the upload completes, as the stream closes.
        with (
            self.fs.open_output_stream(self.path(key)) as stream,
            pq.ParquetWriter(stream, **parquet_options(schema)) as writer,
        ):
            for part in parts:
                if isinstance(part, pa.Table):
                    writer.write_table(part)
                else:
                    writer.write_batch(part)

    def dataset(self, key: str) -> pads.Dataset:
        return pads.dataset(self.path(key), filesystem=self.fs, format="parquet")

    def scan(self, con: duckdb.DuckDBPyConnection, key: str) -> str:
        name = f"_as_object_{next(_names)}"
        con.register(name, self.dataset(key))
        return f'"{name}"'

    def write_query(
        self,
        con: duckdb.DuckDBPyConnection,
        query: str,
        key: str,
        metadata: dict[str, str] | None = None,
    ) -> None:
        self.scratch.mkdir(parents=True, exist_ok=True)
        temporary = self.scratch / f"{uuid.uuid4().hex}.parquet"
        try:
            con.execute(_copy_sql(query, temporary, metadata))
            self.put_file(temporary, key)
        finally:
            temporary.unlink(missing_ok=True)

    def publish_folder(self, files: dict[str, Path], key: str) -> None:
        # No atomic folder rename in a bucket: the files first, then the mark that
        # says they are all there; a folder without it is ignored and swept.
        for name, source in files.items():
            self.put_file(source, f"{key}/{name}")
        self.write_bytes(f"{key}/{COMPLETE}", b"complete\n")

    def folder_complete(self, key: str) -> bool:
        return self.exists(f"{key}/{COMPLETE}")


def _s3(url: str, endpoint: str | None, region: str | None, scratch: Path) -> ObjectStorage:
    parts = urlsplit(url)
    bucket = parts.netloc
    if not bucket:
        raise UserInputError(
            f"AUDIENCESYNC_STORAGE_URL {url!r} names no bucket: use s3://bucket/prefix."
        )
    options: dict[str, object] = {}
    if endpoint:
        target = urlsplit(endpoint if "://" in endpoint else f"https://{endpoint}")
        if target.scheme not in ("http", "https") or not target.netloc:
            raise UserInputError(
                f"AUDIENCESYNC_STORAGE_ENDPOINT_URL {endpoint!r} is not an http(s) address: "
                "give it as https://host:port."
            )
        options["endpoint_override"] = target.netloc
        options["scheme"] = target.scheme
    if region:
        options["region"] = region
    filesystem = pafs.S3FileSystem(**options)
    return ObjectStorage(url, filesystem, f"{bucket}/{parts.path.strip('/')}", scratch)


def open_storage(
    url: str | None,
    home: Path,
    *,
    endpoint: str | None = None,
    region: str | None = None,
) -> Storage:
    """The storage named by ``url`` (the home folder when None); UserInputError when the
    URL is not a folder or an ``s3://`` bucket."""
    if not url:
        return LocalStorage(home)
    parts = urlsplit(url)
    if parts.scheme == "s3":
        return _s3(url, endpoint, region, home / "scratch" / "storage")
    if parts.scheme == "file":
        return LocalStorage(Path(parts.path).expanduser().resolve())
    if parts.scheme == "" or (len(parts.scheme) == 1 and os.name == "nt"):
        return LocalStorage(Path(url).expanduser().resolve())
    raise UserInputError(
        f"AUDIENCESYNC_STORAGE_URL {parts.scheme}:// is not supported: use a local folder "
        "or s3://bucket/prefix (any S3-compatible server, with "
        "AUDIENCESYNC_STORAGE_ENDPOINT_URL)."
    )
