"""Locks: mutual exclusion across threads, processes, guests and stores; expiry; the error cases."""

from __future__ import annotations

import json
import signal
import threading
import time
from typing import Any

import pytest

from wasikv import Bucket
from wasikv_sdk.coordination import CorruptRecord, LockError, LockExists, LockTimeout, NotLockOwner
from wasikv_sdk.locks import KEY_PREFIX, Lock

from .conftest import OpenBucket, finish, first_line, spawn_guest, spawn_worker

LOOP_LOCK: dict[str, Any] = {"ttl": 30.0, "tries": 20000, "sleep": 0.001, "max_sleep": 0.02}


def record(bucket: Bucket, name: str) -> dict[str, Any]:
    raw = bucket.get(KEY_PREFIX + name)
    assert raw is not None
    data: dict[str, Any] = json.loads(raw)
    return data


def test_acquire_release_and_inspection(bucket: Bucket) -> None:
    lock = Lock(bucket, "job", ttl=10)
    assert not lock.locked() and not lock.owned() and lock.token is None
    assert lock.acquire() is True
    assert lock.locked() and lock.owned() and lock.token is not None
    assert lock.expires > time.time()
    held = record(bucket, "job")
    assert held["owner"] == lock.token and held["fence"] == lock.fence == 1
    other = Lock(bucket, "job")
    assert other.locked() and not other.owned()
    assert other.try_acquire() is False
    lock.release()
    assert not lock.locked() and lock.token is None
    assert record(bucket, "job")["owner"] is None
    with Lock(bucket, "job") as again:
        assert again.owned() and again.fence == 2  # fences grow with every acquisition
    assert not again.locked()
    assert Lock(bucket, "job").try_acquire() is True


def test_not_lock_owner(bucket: Bucket) -> None:
    lock = Lock(bucket, "n", ttl=10)
    with pytest.raises(NotLockOwner):
        lock.release()  # never acquired
    lock.acquire()
    lock.release()
    with pytest.raises(NotLockOwner):
        lock.release()  # released twice
    with pytest.raises(NotLockOwner):
        lock.refresh()
    # Another object with the same name does not own it either.
    lock.acquire()
    with pytest.raises(NotLockOwner):
        Lock(bucket, "n").release()
    assert lock.owned()
    lock.release()


def test_lock_timeout_and_lock_exists(bucket: Bucket) -> None:
    holder = Lock(bucket, "busy", ttl=30)
    holder.acquire()
    waiter = Lock(bucket, "busy", tries=3, sleep=0.01)
    with pytest.raises(LockTimeout, match="3 tries"):
        waiter.acquire()
    assert isinstance(LockTimeout("x"), TimeoutError)
    with pytest.raises(LockExists):
        Lock(bucket, "busy", fail_if_exists=True, tries=1000).acquire()
    assert holder.owned()  # none of that disturbed the holder
    holder.release()
    free = Lock(bucket, "busy", fail_if_exists=True)
    assert free.acquire()  # fail_if_exists only fails on a held lock
    free.release()


def test_expiry_takeover_and_stale_holder(bucket: Bucket) -> None:
    first = Lock(bucket, "lease", ttl=0.3)
    first.acquire()
    time.sleep(0.4)
    assert not first.locked() and not first.owned()
    second = Lock(bucket, "lease", ttl=10, tries=1)
    assert second.acquire()  # the expired lease is taken over at once
    assert second.fence == first.fence + 1
    with pytest.raises(NotLockOwner, match="expired"):
        first.release()
    with pytest.raises(NotLockOwner):
        first.refresh()
    assert second.owned()
    second.release()


def test_expired_but_not_taken_still_releases_and_refreshes(bucket: Bucket) -> None:
    lock = Lock(bucket, "late", ttl=0.2)
    lock.acquire()
    time.sleep(0.3)
    lock.release()  # nobody took it: releasing is fine
    lock.acquire()
    time.sleep(0.3)
    new_expiry = lock.refresh(10)
    assert new_expiry > time.time() + 5
    assert Lock(bucket, "late").locked()
    lock.release()


def test_not_reentrant_and_bad_records(bucket: Bucket) -> None:
    lock = Lock(bucket, "once")
    lock.acquire()
    with pytest.raises(LockError, match="reentrant"):
        lock.acquire()
    lock.release()
    bucket.set(KEY_PREFIX + "garbage", b"not json")
    with pytest.raises(CorruptRecord):
        Lock(bucket, "garbage").acquire()
    with pytest.raises(ValueError):
        Lock(bucket, "x", ttl=0)
    with pytest.raises(ValueError):
        Lock(bucket, "x", tries=0)


@pytest.mark.parametrize("url_kind", ["memory", "sqlite"])
def test_threads_never_overlap(url_kind: str, sqlite_url: str, open_bucket: OpenBucket) -> None:
    bucket = open_bucket("memory:" if url_kind == "memory" else sqlite_url)
    threads, each = 8, 40
    inside = 0
    overlaps = 0
    guard = threading.Lock()
    start = threading.Barrier(threads)

    def work() -> None:
        nonlocal inside, overlaps
        start.wait()
        for _ in range(each):
            with Lock(bucket, "rmw", **LOOP_LOCK):
                with guard:
                    inside += 1
                    overlaps += inside > 1
                value = int(bucket.get("plain") or b"0")
                time.sleep(0)  # let other threads run inside the critical section if they could
                bucket.set("plain", str(value + 1).encode())
                with guard:
                    inside -= 1

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    assert overlaps == 0
    assert bucket.get("plain") == str(threads * each).encode()


# -- 4 processes x 100 lock-protected get/+1/set of a plain key ---------------------------------------


def four_by_hundred(url: str, guests: int, hosts: int, open_bucket: OpenBucket) -> None:
    running = [spawn_worker("lock-loop", url, "rmw", "plain", "100") for _ in range(hosts)]
    running += [spawn_guest(url, "lock-loop", "rmw", "plain", "100") for _ in range(guests)]
    finish(running)
    bucket = open_bucket(url)
    assert bucket.get("plain") == str(100 * (hosts + guests)).encode()
    assert not Lock(bucket, "rmw").locked()


@pytest.mark.slow
def test_four_processes_on_sqlite(sqlite_url: str, open_bucket: OpenBucket) -> None:
    four_by_hundred(sqlite_url, guests=0, hosts=4, open_bucket=open_bucket)


@pytest.mark.slow
def test_four_guest_components_on_sqlite(sqlite_url: str, open_bucket: OpenBucket) -> None:
    four_by_hundred(sqlite_url, guests=4, hosts=0, open_bucket=open_bucket)


@pytest.mark.slow
def test_guests_and_host_processes_share_one_lock(sqlite_url: str, open_bucket: OpenBucket) -> None:
    four_by_hundred(sqlite_url, guests=2, hosts=2, open_bucket=open_bucket)


@pytest.mark.slow
def test_four_processes_on_redis(redis_url: str, open_bucket: OpenBucket) -> None:
    four_by_hundred(redis_url, guests=0, hosts=4, open_bucket=open_bucket)


@pytest.mark.slow
def test_four_guest_components_on_redis(redis_url: str, open_bucket: OpenBucket) -> None:
    four_by_hundred(redis_url, guests=4, hosts=0, open_bucket=open_bucket)


# -- a holder killed while holding the lock ----------------------------------------------------------


def taken_over_after_ttl(bucket: Bucket, expires: float, holder_fence: int) -> None:
    if time.time() < expires - 0.2:
        assert Lock(bucket, "crash").locked()
        with pytest.raises(LockExists):
            Lock(bucket, "crash", fail_if_exists=True).acquire()
    successor = Lock(bucket, "crash", ttl=10, tries=400, sleep=0.02, max_sleep=0.1)
    successor.acquire()
    assert time.time() >= expires  # not before the dead holder's lease ran out
    assert successor.fence == holder_fence + 1
    successor.release()


@pytest.mark.slow
def test_killed_holder_is_taken_over_after_ttl(
    sqlite_url: str, open_bucket: OpenBucket, reaper: list[Any]
) -> None:
    holder = spawn_worker("lock-hold", sqlite_url, "crash", "2.0")
    reaper.append(holder)
    held = first_line(holder)
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=30)
    taken_over_after_ttl(open_bucket(sqlite_url), held["expires"], held["fence"])


@pytest.mark.slow
def test_killed_guest_holder_is_taken_over_after_ttl(
    sqlite_url: str, open_bucket: OpenBucket, reaper: list[Any]
) -> None:
    holder = spawn_guest(sqlite_url, "lock-hold", "crash", "2.0", "600")
    reaper.append(holder)
    held = first_line(holder)
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=30)
    taken_over_after_ttl(open_bucket(sqlite_url), held["expires"], held["fence"])
