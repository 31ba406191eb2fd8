"""One run per output: a lease file in the output that a run takes before writing and a second run respects.

    <output>/_lease.json   {"run", "owner", "host", "pid", "started", "heartbeat", "heartbeat_utc", "timeout"}

A run creates the file only if there is none, renews its heartbeat every `timeout / 8` seconds from a
daemon thread, and deletes it when it ends, failed or not (SIGTERM included; SIGKILL leaves it to
expire). A second run that finds the file exits with one line naming the holder, or waits for it to
go (`--wait-for-lease`). A lease whose heartbeat is older than its timeout, or whose process is gone
from this host, belongs to a dead run and is taken over.

Every change is a conditional write, so of two runs that create or take over the lease at the same
moment exactly one wins:
- S3 (and stores that speak its API): PutObject with `If-None-Match: *` to create, `If-Match: <ETag>`
  to renew or take over, DeleteObject with `If-Match` to release (AWS since 2024/2025, MinIO, moto).
  A store that ignores these headers is detected when the lease is created, and said so.
- Local disks (and NFS): the reads and writes of the lease happen under an `flock` of `_lease.lock`
  beside it, each write going to a temporary file renamed into place.
- Other fsspec stores (gs://, abfs://, ...): best effort, check then write; a warning says so.

Clocks: a heartbeat is judged by the reader's clock against the holder's, so hosts are assumed to
keep time (NTP) to well within the timeout.
"""

from __future__ import annotations

import contextlib
import getpass
import hashlib
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from model.config_fields import arg
from model.storage import is_local, protocols
from pipeline.io import remove

LEASE_FILE = "_lease.json"
LOCK_FILE = "_lease.lock"  # local disks: the flock that makes check-and-write atomic
HELD_EXIT_STATUS = 3  # the translation job's exit status when another run holds the output

_HELD_HERE: set[str] = set()  # run ids whose lease this process holds (a lease of this pid not in it is stale)


@dataclass(frozen=True)
class LeaseConfig:
    """How a run shares its output with other runs (one at a time)."""

    wait_for_lease: float = arg(0.0, help="seconds to wait when another run holds --output's lease "
                                "(0: exit at once with status 3, naming the holder)")
    lease_timeout: float = arg(120.0, help="a lease whose heartbeat is older than this many seconds belongs to a "
                               "dead run and is taken over (its holder renews it every timeout/8 seconds)")

    def __post_init__(self):
        if self.lease_timeout <= 0 or self.wait_for_lease < 0:
            raise ValueError("--lease-timeout must be > 0 and --wait-for-lease >= 0")


class LeaseStore(Protocol):
    """One small object with compare-and-swap writes. `version` identifies the content a write replaces."""

    atomic: bool  # False: check-then-write, for stores without conditional writes

    def read(self) -> tuple[bytes, str] | None: ...

    def create(self, data: bytes) -> str | None:
        """Write if there is no lease; the new version, or None if there is one."""

    def replace(self, data: bytes, version: str) -> str | None:
        """Write if the lease is still `version`; the new version, or None."""

    def delete(self, version: str) -> None:
        """Delete if the lease is still `version`."""


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class LocalStore:
    """A lease on a local (or NFS) disk: every read and write under an flock of a lock file beside it."""

    atomic = True

    def __init__(self, path: str):
        self.path, self.lock = path, os.path.join(os.path.dirname(path), LOCK_FILE)

    @contextlib.contextmanager
    def _locked(self):
        import fcntl

        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        fd = os.open(self.lock, os.O_CREAT | os.O_RDWR, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the flock

    def _read(self) -> tuple[bytes, str] | None:
        try:
            with open(self.path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return None
        return data, _digest(data)

    def _write(self, data: bytes) -> str:
        tmp = f"{self.path}.tmp-{uuid.uuid4().hex}"
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)  # readers without the lock (people) never see half a file
        return _digest(data)

    def read(self):
        with self._locked():
            return self._read()

    def create(self, data):
        with self._locked():
            return None if self._read() is not None else self._write(data)

    def replace(self, data, version):
        with self._locked():
            current = self._read()
            return self._write(data) if current is not None and current[1] == version else None

    def delete(self, version):
        with self._locked():
            current = self._read()
            if current is not None and current[1] == version:
                os.remove(self.path)


def _precondition_failed(error: BaseException) -> bool:
    """s3fs turns S3's 412 (and 409, a concurrent conditional write) into OSErrors; the ClientError is the cause."""
    cause = error.__cause__ or error
    response = getattr(cause, "response", None) or {}
    code = response.get("Error", {}).get("Code", "")
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return code in ("PreconditionFailed", "ConditionalRequestConflict") or status in (409, 412)


class S3Store:
    """A lease object on S3 through s3fs's client (its endpoint and credentials), with conditional writes."""

    def __init__(self, fs, path: str):
        self.fs = fs
        self.bucket, self.key, _ = fs.split_path(path)
        self.honours_conditions: bool | None = None  # found out at the first create

    @property
    def atomic(self) -> bool:
        return self.honours_conditions is not False

    def _put(self, data: bytes, **condition) -> str | None:
        try:
            response = self.fs.call_s3("put_object", Bucket=self.bucket, Key=self.key, Body=data, **condition)
        except OSError as e:
            if _precondition_failed(e):
                return None
            raise
        self.fs.invalidate_cache(f"{self.bucket}/{self.key}")
        return response["ETag"]

    def read(self):
        from fsspec.asyn import sync

        async def get():
            response = await self.fs._call_s3("get_object", Bucket=self.bucket, Key=self.key)
            async with response["Body"] as body:
                return await body.read(), response["ETag"]

        try:
            return sync(self.fs.loop, get)
        except FileNotFoundError:
            return None

    def create(self, data):
        version = self._put(data, IfNoneMatch="*")
        if version is not None and self.honours_conditions is None:
            # Some S3-compatible stores ignore If-None-Match: the same create again must be refused.
            again = self._put(data, IfNoneMatch="*")
            self.honours_conditions = again is None
            version = again or version
        return version

    def replace(self, data, version):
        return self._put(data, IfMatch=version)

    def delete(self, version):
        try:
            self.fs.call_s3("delete_object", Bucket=self.bucket, Key=self.key, IfMatch=version)
        except FileNotFoundError:
            return
        except OSError as e:
            if _precondition_failed(e):
                return
            current = self.read()  # a store without conditional deletes: check, then delete
            if current is not None and current[1] == version:
                self.fs.call_s3("delete_object", Bucket=self.bucket, Key=self.key)
        self.fs.invalidate_cache(f"{self.bucket}/{self.key}")


class FsspecStore:
    """Best effort for stores without conditional writes here: check, then write (a race of milliseconds)."""

    atomic = False

    def __init__(self, fs, path: str):
        self.fs, self.path = fs, path

    def read(self):
        try:
            data = self.fs.cat_file(self.path)
        except FileNotFoundError:
            return None
        return data, _digest(data)

    def create(self, data):
        if self.fs.exists(self.path):
            return None
        self.fs.pipe_file(self.path, data)
        current = self.read()
        return current[1] if current is not None and current[0] == data else None

    def replace(self, data, version):
        current = self.read()
        if current is None or current[1] != version:
            return None
        self.fs.pipe_file(self.path, data)
        return _digest(data)

    def delete(self, version):
        current = self.read()
        if current is not None and current[1] == version:
            self.fs.rm_file(self.path)


def lease_store(fs, root: str) -> LeaseStore:
    path = f"{root}/{LEASE_FILE}"
    if is_local(fs):
        return LocalStore(path)
    if {"s3", "s3a"} & set(protocols(fs)):
        return S3Store(fs, path)
    return FsspecStore(fs, path)


@dataclass(frozen=True)
class Holder:
    """Who holds a lease, as its file says."""

    run: str = ""
    owner: str = "?"
    host: str = "?"
    pid: int = 0
    started: str = "?"
    heartbeat: float = 0.0
    timeout: float = 0.0

    @classmethod
    def parse(cls, data: bytes) -> Holder:
        """A file that cannot be read as a lease counts as one whose holder died long ago."""
        try:
            fields = json.loads(data)
            return cls(**{k: fields[k] for k in cls.__dataclass_fields__ if k in fields})
        except (ValueError, TypeError):
            return cls()

    def describe(self, now: float) -> str:
        return (f"{self.owner}@{self.host} pid {self.pid}, started {self.started}, last heartbeat "
                f"{max(0.0, now - self.heartbeat):.0f} s ago")


class LeaseHeld(RuntimeError):
    """Another run holds the output; the message is one line naming it."""


class Lease:
    """This run's lease on one output: `acquire`, `start_heartbeat`, then `release` in a `finally`."""

    def __init__(self, store: LeaseStore, where: str, timeout: float, clock: Callable[[], float] = time.time):
        self.store, self.where, self.timeout, self.clock = store, where, timeout, clock
        self.run = uuid.uuid4().hex
        self.host, self.pid = socket.gethostname(), os.getpid()
        self.started = datetime.now(UTC).isoformat(timespec="seconds")
        self.version: str | None = None
        self.took_over: Holder | None = None  # the dead run whose lease this one took
        self.lost: Holder | None = None  # set if another run took this lease (this run stalled past the timeout)
        self._lock, self._stop, self._thread = threading.Lock(), threading.Event(), None

    def _record(self) -> bytes:
        now = self.clock()
        return json.dumps({"run": self.run, "owner": _user(), "host": self.host, "pid": self.pid,
                           "started": self.started, "heartbeat": now,
                           "heartbeat_utc": datetime.fromtimestamp(now, UTC).isoformat(timespec="seconds"),
                           "timeout": self.timeout}, indent=1).encode()

    def expired(self, holder: Holder) -> bool:
        """A holder is dead when its heartbeat is older than its timeout, or its process is gone from this host."""
        if self.clock() - holder.heartbeat > (holder.timeout or self.timeout):
            return True
        if holder.host == self.host and holder.pid:
            if holder.pid == os.getpid():
                return holder.run not in _HELD_HERE  # left by an earlier run in this process
            return not _pid_alive(holder.pid)
        return False

    def acquire(self, wait: float = 0.0, on_wait: Callable[[str], None] = print) -> None:
        """Take the lease, waiting up to `wait` seconds for another holder to go; LeaseHeld if it stays."""
        deadline = self.clock() + wait
        poll = max(0.05, min(5.0, self.timeout / 8))
        _HELD_HERE.add(self.run)  # from its first write on: another thread of this process must see it alive
        try:
            self._acquire(deadline, wait, poll, on_wait)
        except BaseException:
            _HELD_HERE.discard(self.run)
            raise

    def _acquire(self, deadline: float, wait: float, poll: float, on_wait) -> None:
        told = False
        while True:
            version = self.store.create(self._record())
            if version is not None:
                break
            current = self.store.read()
            if current is None:  # released in between: create it again
                time.sleep(0.01)
                continue
            holder = Holder.parse(current[0])
            if self.expired(holder):
                version = self.store.replace(self._record(), current[1])
                if version is not None:
                    self.took_over = holder
                    break
                continue  # another run renewed or took it first: look again
            left = deadline - self.clock()
            if left <= 0:
                raise LeaseHeld(f"{self.where} is being written by another run ({holder.describe(self.clock())}); "
                                f"its lease expires {holder.timeout or self.timeout:.0f} s after its last heartbeat. "
                                "Wait for it with --wait-for-lease SECONDS, or write elsewhere")
            if not told:
                on_wait(f"waiting up to {wait:.0f} s for the run holding {self.where} "
                        f"({holder.describe(self.clock())})")
                told = True
            time.sleep(min(poll, left))
        self.version = version

    def start_heartbeat(self, on_lost: Callable[[Holder], None]) -> None:
        """Renew the heartbeat every timeout/8 s from a daemon thread; `on_lost` if another run took the lease."""
        self._thread = threading.Thread(target=self._beat, args=(on_lost,), name="lease-heartbeat", daemon=True)
        self._thread.start()

    def _beat(self, on_lost) -> None:
        while not self._stop.wait(self.timeout / 8):
            with self._lock:
                try:
                    version = self.store.replace(self._record(), self.version)
                    current = self.store.read() if version is None else None
                except OSError:  # a storage hiccup: the next beat tries again, the timeout allows ~8 misses
                    continue
                if version is None and current is not None and Holder.parse(current[0]).run == self.run:
                    version = current[1]  # our write landed but its answer was lost, and the retry was refused
                if version is None:
                    self.lost = Holder.parse(current[0]) if current else Holder()
                    _HELD_HERE.discard(self.run)
                    break
                self.version = version
        if self.lost is not None:
            on_lost(self.lost)

    def release(self) -> None:
        """Stop the heartbeat and delete the lease if it is still this run's."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        with self._lock:
            if self.version is not None and self.lost is None:
                try:
                    self.store.delete(self.version)
                except OSError:
                    pass  # it expires after the timeout
            self.version = None
            _HELD_HERE.discard(self.run)


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # a container user without a passwd entry
        return str(os.getuid())


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def clear_output(fs, root: str) -> None:
    """--overwrite: delete everything in the output but the lease this run holds."""
    fs.invalidate_cache(root)
    if not fs.exists(root):
        return
    for path in fs.ls(root, detail=False):
        if os.path.basename(path.rstrip("/")) not in (LEASE_FILE, LOCK_FILE):
            remove(fs, path)
