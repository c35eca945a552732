"""Object storage behind one interface: S3-compatible (production) or a local folder (embedded).

Durable things live here: job records, uploads, results, model versions. Results are
written under a temporary key and published (S3: copy then delete; local: rename) only
when complete, so a download link never points at half a video.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import shutil
import time
import uuid
from abc import ABC, abstractmethod
from pathlib import Path
from typing import BinaryIO
from urllib.parse import quote, urlencode

from savgan.common.settings import Settings

CHUNK = 1024 * 1024
# uvicorn runs sync routes on a 40-thread pool: fewer pooled connections than that made boto3
# discard and reopen connections under load (seen in bench/service.py).
MAX_POOL_CONNECTIONS = 64


class ObjectNotFound(KeyError):
    pass


class UploadTooLarge(ValueError):
    pass


class ObjectExists(FileExistsError):
    """A conditional create found its key already taken (by another writer, possibly at the same moment)."""


class ConditionalWritesUnsupported(RuntimeError):
    """The S3 server cannot create an object only if it is absent, so names cannot be claimed safely."""


class OutsideStorage(PermissionError):
    """A local key whose file, once symbolic links are followed, lies outside the storage folder."""


def check_key(key: str) -> str:
    """Keys are relative, slash-separated, and never climb out of their prefix."""
    parts = key.split("/")
    if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts) or "\\" in key:
        raise ValueError(f"invalid storage key {key!r}")
    return key


class _LimitedReader:
    """Reads a stream and refuses to go past ``limit`` bytes, so an upload is never held or stored whole."""

    def __init__(self, stream: BinaryIO, limit: int) -> None:
        self.stream, self.limit, self.count = stream, limit, 0

    def read(self, size: int = -1) -> bytes:
        chunk = self.stream.read(CHUNK if size is None or size < 0 else size)
        self.count += len(chunk)
        if self.count > self.limit:
            raise UploadTooLarge(f"upload exceeds the limit of {self.limit} bytes")
        return chunk


class Storage(ABC):
    @abstractmethod
    def put_bytes(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None: ...

    @abstractmethod
    def put_file(self, key: str, path: Path, content_type: str = "application/octet-stream") -> None: ...

    @abstractmethod
    def put_stream(self, key: str, stream: BinaryIO, max_bytes: int, content_type: str = "application/octet-stream") -> int:
        """Store a stream chunk by chunk; raise :class:`UploadTooLarge` (storing nothing) past ``max_bytes``."""

    @abstractmethod
    def create_exclusive(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        """Store ``data`` under ``key`` only if nothing is there yet, as one atomic step: of writers
        racing on a key exactly one succeeds, the others get :class:`ObjectExists`. Claiming a
        name this way needs no lock service (model versions are numbered with it)."""

    @abstractmethod
    def get_bytes(self, key: str) -> bytes: ...

    @abstractmethod
    def download(self, key: str, path: Path) -> None: ...

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def list(self, prefix: str) -> list[str]:
        """Keys under ``prefix``, sorted."""

    @abstractmethod
    def delete(self, key: str) -> None: ...

    @abstractmethod
    def publish(self, src: str, dst: str) -> None:
        """Move a finished object from its temporary key to its final one."""

    @abstractmethod
    def link(self, key: str, filename: str, ttl_s: int) -> str:
        """A short-lived download URL that saves as ``filename``."""

    @abstractmethod
    def ping(self) -> None:
        """Raise if the storage cannot be reached (readiness)."""

    def delete_prefix(self, prefix: str) -> None:
        for key in self.list(prefix):
            self.delete(key)


class S3Storage(Storage):
    """boto3 with SigV4 and checksums only when required (many S3-compatible servers reject the new defaults).

    Traffic goes to the internal endpoint; links are signed for the public endpoint, so they work
    from outside the compose network. Every call is bounded: botocore's defaults (60 s connect,
    60 s read, several retries) let a frozen server hold a request for minutes, so the timeouts
    and the number of tries come from settings, sized for the API to answer within 5 s. Uploads
    go without ``Expect: 100-continue``: against a frozen server each try would first wait a
    second for the interim answer, and our bodies are never refused for their size.
    """

    def __init__(self, settings: Settings) -> None:
        import boto3
        from botocore.config import Config
        from botocore.handlers import add_expect_header

        config = Config(
            signature_version="s3v4",
            s3={"addressing_style": "path"},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            connect_timeout=settings.s3_connect_timeout_s,
            read_timeout=settings.s3_read_timeout_s,
            retries={"total_max_attempts": settings.s3_attempts, "mode": "standard"},
            max_pool_connections=MAX_POOL_CONNECTIONS,
        )
        credentials = {
            "region_name": settings.s3_region,
            "aws_access_key_id": settings.s3_access_key_id.get_secret_value() if settings.s3_access_key_id else None,
            "aws_secret_access_key": settings.s3_secret_access_key.get_secret_value()
            if settings.s3_secret_access_key
            else None,
            "config": config,
        }
        self.bucket = settings.s3_bucket
        self.client = boto3.client("s3", endpoint_url=settings.s3_endpoint_url, **credentials)
        self.client.meta.events.unregister("before-call.s3", add_expect_header)
        public = settings.s3_public_endpoint_url or settings.s3_endpoint_url
        self.signer = boto3.client("s3", endpoint_url=public, **credentials)

    def ensure_bucket(self) -> None:
        from botocore.exceptions import ClientError

        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError:
            self.client.create_bucket(Bucket=self.bucket)

    def put_bytes(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        self.client.put_object(Bucket=self.bucket, Key=check_key(key), Body=data, ContentType=content_type)

    def put_file(self, key: str, path: Path, content_type: str = "application/octet-stream") -> None:
        self.client.upload_file(str(path), self.bucket, check_key(key), ExtraArgs={"ContentType": content_type})

    def put_stream(self, key: str, stream: BinaryIO, max_bytes: int, content_type: str = "application/octet-stream") -> int:
        reader = _LimitedReader(stream, max_bytes)
        self.client.upload_fileobj(reader, self.bucket, check_key(key), ExtraArgs={"ContentType": content_type})
        return reader.count

    def create_exclusive(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        """``PutObject`` with ``If-None-Match: *``: 412 when the key exists, 409 while another
        conditional write of it is in flight (both: taken); 501 from a server without conditional
        writes, which must not fall back to a plain put that would overwrite."""
        from botocore.exceptions import ClientError

        try:
            self.client.put_object(
                Bucket=self.bucket, Key=check_key(key), Body=data, ContentType=content_type, IfNoneMatch="*"
            )
        except ClientError as err:
            code = err.response.get("Error", {}).get("Code", "")
            if code in ("PreconditionFailed", "ConditionalRequestConflict"):
                raise ObjectExists(key) from None
            if code == "NotImplemented":
                raise ConditionalWritesUnsupported(
                    f"the S3 server at {self.client.meta.endpoint_url} does not support conditional writes "
                    f"(PutObject with If-None-Match: *), needed to claim {key!r} without overwriting another "
                    "writer's object: use a server that has them "
                    "(AWS S3, MinIO, SeaweedFS 4.48 as docker-compose.yml pins)"
                ) from err
            raise

    def _missing(self, err: Exception) -> bool:
        code = getattr(err, "response", {}).get("Error", {}).get("Code", "")
        return code in ("404", "NoSuchKey", "NotFound")

    def get_bytes(self, key: str) -> bytes:
        from botocore.exceptions import ClientError

        try:
            return self.client.get_object(Bucket=self.bucket, Key=check_key(key))["Body"].read()
        except ClientError as err:
            if self._missing(err):
                raise ObjectNotFound(key) from None
            raise

    def download(self, key: str, path: Path) -> None:
        from botocore.exceptions import ClientError

        try:
            self.client.download_file(self.bucket, check_key(key), str(path))
        except ClientError as err:
            if self._missing(err):
                raise ObjectNotFound(key) from None
            raise

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=check_key(key))
            return True
        except ClientError as err:
            if self._missing(err):
                return False
            raise

    def list(self, prefix: str) -> list[str]:
        keys: list[str] = []
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            keys += [item["Key"] for item in page.get("Contents", [])]
        return sorted(keys)

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=check_key(key))

    def publish(self, src: str, dst: str) -> None:
        self.client.copy_object(
            Bucket=self.bucket, Key=check_key(dst), CopySource={"Bucket": self.bucket, "Key": check_key(src)}
        )
        self.delete(src)

    def link(self, key: str, filename: str, ttl_s: int) -> str:
        return self.signer.generate_presigned_url(
            "get_object",
            Params={
                "Bucket": self.bucket,
                "Key": check_key(key),
                "ResponseContentDisposition": f'attachment; filename="{filename}"',
            },
            ExpiresIn=ttl_s,
        )

    def ping(self) -> None:
        self.client.head_bucket(Bucket=self.bucket)


class LocalStorage(Storage):
    """A folder; links point at the API's ``/files/{key}`` route and carry an HMAC signature and expiry."""

    def __init__(self, root: Path, public_base_url: str, signing_secret: str) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.base_url = public_base_url.rstrip("/")
        self.secret = signing_secret.encode()

    def path(self, key: str) -> Path:
        return self.root / check_key(key)

    def servable(self, key: str) -> Path:
        """The resolved path of ``key`` for a download, refusing anything that lies outside the root.

        A key is a plain relative path, but a symbolic link inside the folder (to a file or a
        directory) may still point anywhere on the machine: serving the resolved path only when it
        is inside the resolved root keeps a signed link from handing out, say, ``/etc/passwd``.
        Raises :class:`ObjectNotFound` when there is no regular file and :class:`OutsideStorage`
        when the key leads out of the folder.
        """
        root = self.root.resolve()
        resolved = self.path(key).resolve()
        if not resolved.is_relative_to(root):
            raise OutsideStorage(key)
        if not resolved.is_file():
            raise ObjectNotFound(key)
        return resolved

    def _write_atomically(self, key: str, write) -> None:
        final = self.path(key)
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.with_name(f".{final.name}.{os.getpid()}.partial")
        try:
            write(tmp)
            os.replace(tmp, final)
        finally:
            tmp.unlink(missing_ok=True)

    def put_bytes(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        self._write_atomically(key, lambda tmp: tmp.write_bytes(data))

    def put_file(self, key: str, path: Path, content_type: str = "application/octet-stream") -> None:
        self._write_atomically(key, lambda tmp: shutil.copyfile(path, tmp))

    def put_stream(self, key: str, stream: BinaryIO, max_bytes: int, content_type: str = "application/octet-stream") -> int:
        reader = _LimitedReader(stream, max_bytes)

        def write(tmp: Path) -> None:
            with tmp.open("wb") as out:
                while chunk := reader.read(CHUNK):
                    out.write(chunk)

        self._write_atomically(key, write)
        return reader.count

    def create_exclusive(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        """Written aside, then hard-linked into place: ``link`` fails if the name exists, atomically,
        and the file is whole the moment it appears."""
        final = self.path(key)
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.with_name(f".{final.name}.{uuid.uuid4().hex}.partial")
        try:
            tmp.write_bytes(data)
            os.link(tmp, final)
        except FileExistsError:
            raise ObjectExists(key) from None
        finally:
            tmp.unlink(missing_ok=True)

    def get_bytes(self, key: str) -> bytes:
        try:
            return self.path(key).read_bytes()
        except FileNotFoundError:
            raise ObjectNotFound(key) from None

    def download(self, key: str, path: Path) -> None:
        if not self.path(key).is_file():
            raise ObjectNotFound(key)
        shutil.copyfile(self.path(key), path)

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def list(self, prefix: str) -> list[str]:
        keys = (p.relative_to(self.root).as_posix() for p in self.root.rglob("*") if p.is_file())
        return sorted(k for k in keys if k.startswith(prefix) and not k.rsplit("/", 1)[-1].startswith("."))

    def delete(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)

    def publish(self, src: str, dst: str) -> None:
        self.path(dst).parent.mkdir(parents=True, exist_ok=True)
        os.replace(self.path(src), self.path(dst))

    def signature(self, key: str, filename: str, expires: int) -> str:
        message = f"{key}\n{filename}\n{expires}".encode()
        return hmac.new(self.secret, message, hashlib.sha256).hexdigest()

    def link(self, key: str, filename: str, ttl_s: int) -> str:
        expires = int(time.time()) + ttl_s
        query = urlencode({"filename": filename, "expires": expires, "signature": self.signature(key, filename, expires)})
        return f"{self.base_url}/files/{quote(check_key(key))}?{query}"

    def verify(self, key: str, filename: str, expires: int, signature: str) -> bool:
        """True for an unexpired link this storage signed."""
        if expires < time.time():
            return False
        return hmac.compare_digest(self.signature(check_key(key), filename, expires).encode(), signature.encode())

    def ping(self) -> None:
        if not self.root.is_dir():
            raise FileNotFoundError(f"storage folder {self.root} is missing")


def build_storage(settings: Settings) -> Storage:
    if settings.storage == "local":
        return LocalStorage(
            settings.local_storage_dir, settings.public_base_url, settings.signing_secret.get_secret_value()
        )
    return S3Storage(settings)
