"""One small interface over S3-compatible object storage (boto3) and local folders.

URIs are ``s3://bucket/key``, ``file:///abs/path`` or plain local paths. Each process (driver or
actor) makes its own ``Storage``; boto3 clients are never shipped through Ray.
"""
from __future__ import annotations

import fnmatch
import io
import os
import re
import stat
import glob as globlib
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional

from .redact import redact

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif")
_GLOB_CHARS = "*?["


class StorageError(RuntimeError):
    """A storage operation failed after retries (message never carries credentials)."""


@dataclass(frozen=True)
class StorageConfig:
    endpoint_url: Optional[str] = None  # None: AWS_ENDPOINT_URL or AWS itself
    region: Optional[str] = None
    max_attempts: int = 10  # botocore 'standard' retry mode: exponential backoff with jitter
    max_concurrency: int = 16  # threads for parallel transfers

    @classmethod
    def from_dict(cls, values: Optional[dict]) -> "StorageConfig":
        return cls(**(values or {}))

    @property
    def effective_endpoint(self) -> Optional[str]:
        """The manifest's endpoint, else the AWS SDKs' order: AWS_ENDPOINT_URL_S3, then AWS_ENDPOINT_URL."""
        return self.endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")


def is_s3(uri: str) -> bool:
    return uri.startswith("s3://")


def split_s3(uri: str) -> tuple[str, str]:
    """(bucket, key) of ``s3://bucket/key``. Split by hand, not as a URL: S3 keys may hold `#`, `?`
    and `%` literally (`photo #1.png`, `run#2`), which a URL parser would take as a fragment, a query
    or an escape (the whole output of `s3://b/run#2` once went to the key `run`)."""
    bucket, _, key = uri[len("s3://"):].partition("/")
    return bucket, key.lstrip("/")


def local_path(uri: str) -> Path:
    """The path of a local URI; `file://` paths are taken literally (`#`, `?` are file-name characters)."""
    if uri.startswith("file://"):
        rest = uri[len("file://"):]
        return Path(rest if rest.startswith("/") else "/" + rest.partition("/")[2])  # file://localhost/x -> /x
    return Path(uri)


def read_regular_file(path: Path) -> bytes:
    """The bytes of a regular file. A FIFO, a device or a socket named like an image is refused before
    it is opened: reading one blocks forever (a FIFO nobody writes) or never ends (/dev/zero)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # opening a FIFO for reading must not wait for a writer
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(f"{path} is not a regular file (a FIFO, device or socket): give the path of an image file")
        with os.fdopen(fd, "rb", closefd=False) as handle:
            return handle.read()
    finally:
        os.close(fd)


NAME_MAX = 255  # bytes in one local file or folder name (ext4, XFS, APFS, NTFS)
S3_KEY_MAX = 1024  # bytes in an S3 key


def path_problem(uri: str) -> Optional[str]:
    """Why no file or object can have this name, or None: a NUL byte, a local name over NAME_MAX bytes,
    an S3 key over 1024 bytes (the OS's `embedded null byte` / errno 36 name no manifest line)."""
    if "\0" in uri:
        return f"{readable(uri)!r} holds a NUL byte (\\0), which no file or key name can: remove it"
    if is_s3(uri):
        size = len(split_s3(uri)[1].encode("utf-8", "surrogateescape"))
        return f"the key of {uri[:60]!r}... has {size} bytes, over S3's {S3_KEY_MAX}" if size > S3_KEY_MAX else None
    for part in str(local_path(uri)).split(os.sep):
        size = len(part.encode("utf-8", "surrogateescape"))
        if size > NAME_MAX:
            return (f"the name {readable(part[:40])!r}... has {size} bytes, over the file system's {NAME_MAX} "
                    "per file or folder name: shorten it")
    return None


def readable(text: str) -> str:
    """``text`` as valid Unicode: a file name that is not UTF-8 (Python keeps its bytes as lone surrogates)
    shows its bytes as ``\\xe9``. Stored text (catalog, report) and printed text must be valid UTF-8, while
    the URI itself, surrogates included, is what opens the file."""
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a lone surrogate that is no escaped byte
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def join(base: str, *parts: str) -> str:
    """Join key parts under a base URI or path; the parts come from validated names only."""
    return "/".join([base.rstrip("/"), *parts])


def has_glob(uri: str) -> bool:
    return any(ch in uri for ch in _GLOB_CHARS)


def _walk_glob(pattern: str, root: str) -> list[str]:
    """The files under ``root`` that a recursive glob (``**``) matches, each real file once. Every real
    folder is walked once (by device and inode): links that loop back (`a/x -> ..`) neither multiply
    the paths of one image (a self-loop made 41 tasks of one) nor hang (two such links: 2^40 paths)."""
    regex = re.compile(_glob_regex(pattern))
    walked, files, out = set(), set(), []
    for folder, dirs, names in os.walk(root, followlinks=True):
        try:
            info = os.stat(folder)
        except OSError:
            dirs[:] = []
            continue
        if (info.st_dev, info.st_ino) in walked:
            dirs[:] = []
            continue
        walked.add((info.st_dev, info.st_ino))
        dirs.sort()
        for name in sorted(names):
            full = os.path.join(folder, name)
            real = os.path.realpath(full)
            if real not in files and regex.fullmatch(full):
                files.add(real)
                out.append(full)
    return out


def _glob_regex(pattern: str) -> str:
    """A glob as a regular expression with glob's meaning of `/`: `**/` any folders (or none), `*` and `?`
    within one name, `[...]` a class."""
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        elif pattern[i] == "[" and "]" in pattern[i + 2:]:
            end = pattern.index("]", i + 2)
            body = pattern[i + 1:end]
            body = ("^" + body[1:] if body.startswith("!") else body).replace("\\", "\\\\")
            out, i = out + "[" + body + "]", end + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return out


def _stays_inside(path: str, root: str) -> bool:
    """Whether ``path``, symlinks resolved, is still under ``root``: a link inside a named input folder
    that points elsewhere (a private file, a home folder) is not an input."""
    return Path(os.path.realpath(path)).is_relative_to(os.path.realpath(root))


# Content-Type of what texfarm uploads, so a report or image opened from S3 (or a presigned link) displays.
CONTENT_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".webp": "image/webp",
                 ".json": "application/json", ".html": "text/html; charset=utf-8",
                 ".parquet": "application/vnd.apache.parquet", ".tar": "application/x-tar",
                 ".safetensors": "application/octet-stream"}


def content_type(uri: str) -> str:
    return CONTENT_TYPES.get(os.path.splitext(uri)[1].lower(), "application/octet-stream")


def make_s3_client(config: StorageConfig, quick: bool = False):
    """A boto3 S3 client. Region: the manifest's, else the standard chain (AWS_REGION, AWS_DEFAULT_REGION,
    the profile), else us-east-1. ``quick``: two attempts with short timeouts, for the checks before a
    run, so an unreachable endpoint is reported in seconds rather than after a minute of retries."""
    import boto3
    from botocore.config import Config

    endpoint = config.effective_endpoint
    attempts = 2 if quick else config.max_attempts
    options = dict(retries={"mode": "standard", "max_attempts": attempts},
                   max_pool_connections=max(10, config.max_concurrency),
                   connect_timeout=3 if quick else 10, read_timeout=10 if quick else 60)
    if endpoint and "amazonaws.com" not in endpoint:
        # Newer botocore adds CRC checksums that several S3-compatible servers reject.
        options.update(request_checksum_calculation="when_required", response_checksum_validation="when_required")
    session = boto3.session.Session()
    region = config.region or os.environ.get("AWS_REGION") or session.region_name or "us-east-1"
    return session.client("s3", endpoint_url=endpoint, region_name=region, config=Config(**options))


def _reach_problem(exc: Exception, config: StorageConfig) -> Optional[str]:
    """A one-line cause for the errors that are about the connection or the credentials, not the object."""
    from botocore.exceptions import ConnectTimeoutError, EndpointConnectionError, NoCredentialsError

    if isinstance(exc, NoCredentialsError):
        return ("no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE, or run "
                "where an instance role applies")
    if isinstance(exc, (EndpointConnectionError, ConnectTimeoutError)):
        endpoint = redact(config.effective_endpoint or "AWS S3")
        return f"cannot reach the storage endpoint {endpoint}: check storage.endpoint_url and that it is up"
    return None


def _describe(exc: Exception) -> str:
    """A short error text: botocore messages name the operation and code, never credentials."""
    return redact(f"{type(exc).__name__}: {exc}")


class Storage:
    def __init__(self, config: StorageConfig | None = None) -> None:
        self.config = config or StorageConfig()
        self._client = None
        self._quick = None
        self.unreachable: Optional[str] = None  # set by a check that could not reach the endpoint at all

    @property
    def s3(self):
        if self._client is None:
            self._client = make_s3_client(self.config)
        return self._client

    def _transfer_config(self):
        from boto3.s3.transfer import TransferConfig

        return TransferConfig(max_concurrency=min(10, self.config.max_concurrency))

    # --- single objects -------------------------------------------------------------------
    def read(self, uri: str) -> bytes:
        try:
            if is_s3(uri):
                bucket, key = split_s3(uri)
                buffer = io.BytesIO()
                self.s3.download_fileobj(bucket, key, buffer, Config=self._transfer_config())
                return buffer.getvalue()
            return read_regular_file(local_path(uri))
        except Exception as exc:
            raise StorageError(f"cannot read {uri}: {_describe(exc)}") from exc

    def write(self, uri: str, data: bytes) -> None:
        try:
            if is_s3(uri):
                bucket, key = split_s3(uri)
                self.s3.upload_fileobj(io.BytesIO(data), bucket, key, Config=self._transfer_config(),
                                       ExtraArgs={"ContentType": content_type(key)})
                return
            path = local_path(uri)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            tmp.write_bytes(data)
            os.replace(tmp, path)  # atomic: a reader sees the whole file or none
        except Exception as exc:
            raise StorageError(f"cannot write {uri}: {_describe(exc)}") from exc

    def write_new(self, uri: str, data: bytes) -> bool:
        """Write ``uri`` only if it does not exist yet (S3 ``If-None-Match: *``; locally a hard link,
        which fails on an existing name). False when another writer got there first: a completion
        marker is never overwritten."""
        try:
            if is_s3(uri):
                from botocore.exceptions import ClientError

                bucket, key = split_s3(uri)
                try:
                    self.s3.put_object(Bucket=bucket, Key=key, Body=data, IfNoneMatch="*",
                                       ContentType=content_type(key))
                except ClientError as exc:
                    code = exc.response.get("Error", {}).get("Code")
                    if code in ("PreconditionFailed", "412", "ConditionalRequestConflict"):
                        return False
                    if code in ("NotImplemented", "501"):  # a server without conditional writes
                        if self.exists(uri):
                            return False
                        self.write(uri, data)
                        return True
                    raise
                return True
            path = local_path(uri)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
            tmp.write_bytes(data)
            try:
                os.link(tmp, path)  # atomic, and refuses an existing name
                return True
            except FileExistsError:
                return False
            finally:
                tmp.unlink(missing_ok=True)
        except StorageError:
            raise
        except Exception as exc:
            raise StorageError(f"cannot write {uri}: {_describe(exc)}") from exc

    def exists(self, uri: str) -> bool:
        if is_s3(uri):
            from botocore.exceptions import ClientError

            bucket, key = split_s3(uri)
            try:
                self.s3.head_object(Bucket=bucket, Key=key)
                return True
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                    return False
                raise StorageError(f"cannot check {uri}: {_describe(exc)}") from exc
            except Exception as exc:  # unreachable endpoint, bad credentials chain...
                raise StorageError(f"cannot check {uri}: {_describe(exc)}") from exc
        return local_path(uri).exists()

    def delete(self, uri: str) -> None:
        if is_s3(uri):
            bucket, key = split_s3(uri)
            self.s3.delete_object(Bucket=bucket, Key=key)
        else:
            local_path(uri).unlink(missing_ok=True)

    def writable_problem(self, uri: str) -> Optional[str]:
        """Why ``uri`` cannot take outputs, or None; checks without writing anything."""
        if is_s3(uri):
            bucket, _ = split_s3(uri)
            if self._quick is None:
                self._quick = make_s3_client(self.config, quick=True)
            try:
                self._quick.head_bucket(Bucket=bucket)
            except Exception as exc:
                reach = _reach_problem(exc, self.config)
                if reach:
                    self.unreachable = reach
                    return f"cannot write under {uri}: {reach}"
                return f"cannot write under {uri}: bucket {bucket!r} is not reachable ({_describe(exc)})"
            return None
        path = local_path(uri)
        existing = next((p for p in (path, *path.parents) if p.exists()), None)
        if existing is None or not existing.is_dir():
            return f"cannot write under {uri}: {existing} is not a folder"
        if not os.access(existing, os.W_OK | os.X_OK):
            return f"cannot write under {uri}: {existing} is not writable"
        return None

    # --- many objects ---------------------------------------------------------------------
    def list(self, prefix: str) -> list[str]:
        """Every object URI under ``prefix`` (a folder or key prefix), sorted."""
        try:
            if is_s3(prefix):
                bucket, key = split_s3(prefix)
                paginator = self.s3.get_paginator("list_objects_v2")
                return sorted(
                    f"s3://{bucket}/{obj['Key']}"
                    for page in paginator.paginate(Bucket=bucket, Prefix=key)
                    for obj in page.get("Contents", [])
                )
            root = local_path(prefix)
            if not root.is_dir():
                return []
            scheme = "file://" if prefix.startswith("file://") else ""
            return sorted(scheme + str(p) for p in root.rglob("*") if p.is_file())
        except Exception as exc:
            raise StorageError(f"cannot list {prefix}: {_describe(exc)}") from exc

    def expand(self, pattern: str) -> list[str]:
        """A URI, a glob, or a folder/prefix ending in '/' → the image URIs it names."""
        if has_glob(pattern) and "[" in pattern and self.exists(pattern):
            return [pattern]  # `photo[1].png` names a file: the literal match comes first
        if has_glob(pattern):
            if is_s3(pattern):
                bucket, key = split_s3(pattern)
                fixed = key[: min(key.index(ch) for ch in _GLOB_CHARS if ch in key)]
                candidates = self.list(f"s3://{bucket}/{fixed}")
                return [uri for uri in candidates if fnmatch.fnmatchcase(split_s3(uri)[1], key)]
            scheme = "file://" if pattern.startswith("file://") else ""
            path = str(local_path(pattern))
            root = os.path.dirname(path[: min(path.index(ch) for ch in _GLOB_CHARS if ch in path)] + "x")
            found = _walk_glob(path, root) if "**" in path else globlib.glob(path)
            return sorted(scheme + p for p in found if os.path.isfile(p) and _stays_inside(p, root))
        if pattern.endswith("/") or (not is_s3(pattern) and local_path(pattern).is_dir()):
            root = "" if is_s3(pattern) else str(local_path(pattern))
            return [uri for uri in self.list(pattern) if uri.lower().endswith(IMAGE_SUFFIXES)
                    and (is_s3(uri) or _stays_inside(str(local_path(uri)), root))]
        return [pattern] if self.exists(pattern) else []

    def read_many(self, uris: Iterable[str]) -> list[bytes]:
        uris = list(uris)
        if len(uris) <= 1:
            return [self.read(uri) for uri in uris]
        with ThreadPoolExecutor(min(len(uris), self.config.max_concurrency)) as pool:
            return list(pool.map(self.read, uris))

    def write_many_new(self, items: Iterable[tuple[str, bytes]]) -> set[str]:
        """``write_new`` for many objects in parallel; returns the URIs that already existed."""
        items = list(items)
        with ThreadPoolExecutor(max(1, min(len(items), self.config.max_concurrency))) as pool:
            written = list(pool.map(lambda item: self.write_new(*item), items))
        return {uri for (uri, _), new in zip(items, written) if not new}

    def write_many(self, items: Iterable[tuple[str, bytes]]) -> None:
        items = list(items)
        with ThreadPoolExecutor(max(1, min(len(items), self.config.max_concurrency))) as pool:
            list(pool.map(lambda item: self.write(*item), items))
