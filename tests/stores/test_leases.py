"""Leases with fencing tokens on every store: what watch triggers take turns with."""

from __future__ import annotations

import math
import threading
import time

import pytest

from wasikv.errors import StoreError
from wasikv.stores import Store
from wasikv.stores.base import LeaseState

NAME = '["app","audit","notes/"]'


def wait_until_free(store: Store, name: str, holder: str, seconds: float = 10.0) -> LeaseState:
    """Acquire `name` once its lease has expired."""
    deadline = time.monotonic() + seconds
    while True:
        state = store.acquire_lease(name, holder, 5.0)
        if state.acquired:
            return state
        assert time.monotonic() < deadline, f"the lease never expired: {state}"
        time.sleep(0.02)


def test_one_holder_at_a_time_and_tokens_only_grow(store: Store) -> None:
    first = store.acquire_lease(NAME, "host-a", 5.0)
    assert (first.acquired, first.token, first.holder, first.claimed) == (True, 1, "", 0)
    other = store.acquire_lease(NAME, "host-b", 5.0)
    assert (other.acquired, other.token, other.holder) == (False, 1, "host-a")
    store.release_lease(NAME, first.token)
    second = store.acquire_lease(NAME, "host-b", 5.0)
    assert (second.acquired, second.token, second.holder) == (True, 2, "")  # released: no takeover
    # Releasing with a stale token changes nothing.
    store.release_lease(NAME, first.token)
    assert not store.acquire_lease(NAME, "host-c", 5.0).acquired


def test_an_expired_lease_is_taken_over_and_its_holder_is_fenced_out(store: Store) -> None:
    stale = store.acquire_lease(NAME, "host-a", 0.05)
    assert store.save_fenced(NAME, stale.token, 100, 164)
    taken = wait_until_free(store, NAME, "host-b")
    assert (taken.token, taken.holder) == (stale.token + 1, "host-a")  # a takeover
    token = taken.token
    assert store.acquire_lease(NAME, "host-c", 5.0).holder == "host-b"
    # The stale holder can neither renew nor move the position, back or forward.
    assert not store.renew_lease(NAME, "host-a", stale.token, 5.0)
    assert not store.save_fenced(NAME, stale.token, 50, 50)
    assert not store.save_fenced(NAME, stale.token, 500, 500)
    assert store.load_position(NAME) == 100
    # The new holder saves, and renews.
    assert store.save_fenced(NAME, token, 164, 164)
    assert store.renew_lease(NAME, "host-b", token, 5.0)
    assert store.load_position(NAME) == 164


def test_the_next_holder_sees_what_the_last_one_claimed(store: Store) -> None:
    first = store.acquire_lease(NAME, "host-a", 5.0)
    assert store.save_fenced(NAME, first.token, 10, 74)  # delivering 11..74
    store.release_lease(NAME, first.token)
    second = store.acquire_lease(NAME, "host-b", 5.0)
    assert (second.acquired, second.holder, second.claimed) == (True, "", 74)
    assert store.load_position(NAME) == 10


def test_a_renewal_after_expiry_holds_while_nobody_took_over(store: Store) -> None:
    lease = store.acquire_lease(NAME, "host-a", 0.05)
    time.sleep(0.1)
    assert store.renew_lease(NAME, "host-a", lease.token, 5.0)
    assert not store.acquire_lease(NAME, "host-b", 5.0).acquired


def test_racing_holders_get_one_lease(store: Store) -> None:
    barrier = threading.Barrier(8)
    won: list[int] = []

    def race(index: int) -> None:
        barrier.wait()
        if store.acquire_lease(NAME, f"host-{index}", 5.0).acquired:
            won.append(index)

    threads = [threading.Thread(target=race, args=(index,)) for index in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(won) == 1


def test_leases_are_apart_from_each_other_and_from_keys(store: Store) -> None:
    names = [NAME, '["app","audit","a/"]', "with spaces | and\nnewlines", "é" * 200]
    feed = store.last_change()
    for name in names:
        lease = store.acquire_lease(name, "host a/1/x y", 5.0)
        assert lease.acquired and lease.token == 1
        assert store.save_fenced(name, lease.token, len(name), len(name))
    assert [store.load_position(name) for name in names] == [len(name) for name in names]
    assert store.acquire_lease(names[2], "host-b", 5.0).holder == "host a/1/x y"
    assert store.list_keys(None, 10) == []
    assert store.last_change() == feed  # taking and saving are not changes


def test_members_count_the_live_processes_of_a_group(store: Store) -> None:
    assert store.lease_members("app", "host-a", 5.0) == 1
    assert store.lease_members("app", "host-b", 5.0) == 2
    assert store.lease_members("app", "host-b", 5.0) == 2
    assert store.lease_members("other app", "host-c", 5.0) == 1
    store.lease_members("app", "host-gone", 0.05)
    deadline = time.monotonic() + 10
    while store.lease_members("app", "host-a", 5.0) != 2:
        assert time.monotonic() < deadline, "an expired member still counts"
        time.sleep(0.02)


@pytest.mark.parametrize("seconds", [0, -1, math.nan, math.inf, 86401, True, "5"])
def test_bad_lease_times_are_refused(store: Store, seconds: object) -> None:
    with pytest.raises(StoreError, match="lease time must be"):
        store.acquire_lease(NAME, "host-a", seconds)  # type: ignore[arg-type]
    with pytest.raises(StoreError, match="lease time must be"):
        store.lease_members("app", "host-a", seconds)  # type: ignore[arg-type]


@pytest.mark.parametrize("token", [0, -1, 2**63, "1", 1.0, None])
def test_bad_tokens_are_refused(store: Store, token: object) -> None:
    store.acquire_lease(NAME, "host-a", 5.0)
    for call in (
        lambda: store.renew_lease(NAME, "host-a", token, 5.0),  # type: ignore[arg-type]
        lambda: store.release_lease(NAME, token),  # type: ignore[arg-type]
        lambda: store.save_fenced(NAME, token, 1, 1),  # type: ignore[arg-type]
    ):
        with pytest.raises(StoreError, match="lease token must be"):
            call()


def test_bad_names_and_positions_are_refused(store: Store) -> None:
    lease = store.acquire_lease(NAME, "host-a", 5.0)
    with pytest.raises(StoreError, match="must be str"):
        store.acquire_lease(b"name", "host-a", 5.0)  # type: ignore[arg-type]
    with pytest.raises(StoreError, match="position"):
        store.save_fenced(NAME, lease.token, -1, 0)
    with pytest.raises(StoreError, match="position"):
        store.save_fenced(NAME, lease.token, 1, 2**63)
    assert store.load_position(NAME) is None
