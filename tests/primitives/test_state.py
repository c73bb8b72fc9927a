"""State dictionary: all-or-nothing locks and updates, races, torn reads, the change buffer."""

from __future__ import annotations

import threading
import time

import pytest

from wasikv import Bucket
from wasikv_sdk.coordination import CorruptRecord, ResourceLockedError
from wasikv_sdk.state import KEY_PREFIX, StateDictionary

from . import workers
from .conftest import OpenBucket, finish, spawn_worker


def test_locks_are_all_or_nothing_and_releases_always_happen(bucket: Bucket) -> None:
    state = StateDictionary(bucket, "scene")
    state.update_locks("alice", acquire={"a": None, "b": 30.0})
    assert state.copy_locks() == {"a": "alice", "b": "alice"}
    with pytest.raises(ResourceLockedError) as caught:
        state.update_locks("bob", acquire={"b": None, "c": None, "a": 5.0})
    assert caught.value.keys == ["a", "b"]
    assert state.copy_locks() == {"a": "alice", "b": "alice"}  # bob got no lock, not even "c"
    # Releases happen even when the acquisition fails; other tokens' locks are not released.
    state.update_locks("bob", acquire={"c": None})
    with pytest.raises(ResourceLockedError):
        state.update_locks("bob", acquire={"a": None}, release=["c", "b"])
    assert state.copy_locks() == {"a": "alice", "b": "alice"}
    state.update_locks("alice", acquire={"a": 10.0})  # renewing your own lock is fine
    state.update_locks("alice", release=["a", "b"])
    assert state.copy_locks() == {}
    with pytest.raises(ValueError):
        state.update_locks("x", acquire={"k": 0})


def test_updates_are_refused_whole_when_a_key_is_locked(bucket: Bucket) -> None:
    state = StateDictionary(bucket, "scene")
    assert state.copy_content() == {} and state.version() == 0
    assert state.update_state("anyone", updates={"free": 1, "gone": 2}) == 1
    state.update_locks("alice", acquire={"mine": None})
    with pytest.raises(ResourceLockedError) as caught:
        state.update_state("bob", updates={"free": 10, "mine": 10}, removals=["gone"])
    assert caught.value.keys == ["mine"]
    assert state.copy_content() == {"free": 1, "gone": 2} and state.version() == 1
    with pytest.raises(ResourceLockedError):
        state.update_state("bob", removals=["mine"])
    version = state.update_state("alice", updates={"mine": {"x": [1]}, "free": 3}, removals=["gone", "nope"])
    assert version == 2
    assert state.copy_content() == {"free": 3, "mine": {"x": [1]}}
    with pytest.raises(ValueError, match="both"):
        state.update_state("alice", updates={"a": 1}, removals=["a"])
    with pytest.raises(TypeError):
        state.update_state("alice", updates={"a": object()})
    assert state.version() == 2  # refused updates changed nothing


def test_lock_ttl_expires(bucket: Bucket) -> None:
    state = StateDictionary(bucket, "ttl")
    state.update_locks("alice", acquire={"k": 0.2})
    with pytest.raises(ResourceLockedError):
        state.update_state("bob", updates={"k": 1})
    time.sleep(0.3)
    assert state.copy_locks() == {}
    state.update_locks("bob", acquire={"k": None})
    state.update_state("bob", updates={"k": 1})
    assert state.copy_content() == {"k": 1}


def test_dictionaries_are_separate_and_corruption_is_reported(bucket: Bucket) -> None:
    StateDictionary(bucket, "one").update_state("t", updates={"a": 1})
    assert StateDictionary(bucket, "two").copy_content() == {}
    bucket.set(KEY_PREFIX + "broken", b"[1, 2]")
    with pytest.raises(CorruptRecord):
        StateDictionary(bucket, "broken").copy_content()


def test_change_buffer_merges_updates_and_removals(bucket: Bucket) -> None:
    state = StateDictionary(bucket, "feed")
    state.update_state("t", updates={"a": 1, "b": 2})
    everything = state.subscribe()
    later = state.subscribe(include_current=False)
    first = everything.poll()
    assert first.updates == {"a": 1, "b": 2} and first.removals == set()
    assert not later.poll() and not everything.poll()
    state.update_state("t", updates={"a": 10})
    state.update_state("t", updates={"a": 11, "c": 3}, removals=["b"])
    state.update_state("t", updates={"d": 4})
    state.update_state("t", removals=["d"])  # added and removed between two reads: not reported
    for sub in (everything, later):
        change = sub.poll()
        assert change.updates == {"a": 11, "c": 3}
        assert change.removals == {"b"}
        assert change.version == 5
    assert not everything.wait(0.1)  # nothing new: an empty change after the timeout
    threading.Timer(0.2, lambda: state.update_state("t", updates={"e": 5})).start()
    assert everything.wait(10).updates == {"e": 5}
    threading.Timer(0.1, lambda: state.update_state("t", updates={"f": 6})).start()
    merged: dict[str, object] = {}
    for change in later.changes(1.0):
        merged.update(change.updates)
    assert merged == {"e": 5, "f": 6}


def test_two_tokens_racing_never_both_win_threads(sqlite_url: str, open_bucket: OpenBucket) -> None:
    bucket = open_bucket(sqlite_url)
    rounds = 150
    wins = {"t1": 0, "t2": 0}
    start = threading.Barrier(2)
    outcomes: dict[str, list[bool]] = {"t1": [], "t2": []}

    def racer(token: str, keys: dict[str, float | None]) -> None:
        for index in range(rounds):
            start.wait()
            try:
                StateDictionary(bucket, f"race{index}").update_locks(token, acquire=keys)
            except ResourceLockedError:
                outcomes[token].append(False)
            else:
                outcomes[token].append(True)
                wins[token] += 1

    racers = [
        threading.Thread(target=racer, args=("t1", {"a": None, "b": None})),
        threading.Thread(target=racer, args=("t2", {"b": None, "c": None})),
    ]
    for t in racers:
        t.start()
    for t in racers:
        t.join()
    for index in range(rounds):
        assert outcomes["t1"][index] != outcomes["t2"][index], f"round {index}: both or neither won"
        held = StateDictionary(bucket, f"race{index}").copy_locks()
        assert held in ({"a": "t1", "b": "t1"}, {"b": "t2", "c": "t2"})
    assert wins["t1"] + wins["t2"] == rounds


@pytest.mark.slow
def test_two_tokens_racing_never_both_win_processes(sqlite_url: str) -> None:
    rounds = 150
    won1, won2 = finish(
        [
            spawn_worker("state-race", sqlite_url, "race", "t1", str(rounds)),
            spawn_worker("state-race", sqlite_url, "race", "t2", str(rounds)),
        ]
    )
    assert not set(won1) & set(won2)
    assert sorted(won1 + won2) == list(range(rounds))


def test_readers_never_see_a_partial_update_threads(sqlite_url: str, open_bucket: OpenBucket) -> None:
    bucket = open_bucket(sqlite_url)
    state = StateDictionary(bucket, "torn")
    updates = 300
    stop = threading.Event()
    torn: list[dict[str, object]] = []
    reads = [0, 0, 0]
    distinct: list[set[object]] = [set(), set(), set()]

    def reader(index: int) -> None:
        while not stop.is_set():
            content = state.copy_content()
            reads[index] += 1
            if not workers.consistent(content):
                torn.append(content)
            elif content:
                distinct[index].add(content["slot0"])

    readers = [threading.Thread(target=reader, args=(i,)) for i in range(3)]
    for t in readers:
        t.start()
    try:
        for i in range(1, updates + 1):
            slots = {f"slot{n}": i for n in range(workers.SLOTS)}
            if i % 2:
                state.update_state("writer", updates={**slots, "odd": i})
            else:
                state.update_state("writer", updates=slots, removals=["odd"])
    finally:
        stop.set()
        for t in readers:
            t.join()
    assert torn == []
    assert sum(reads) > 0 and any(len(seen) > 1 for seen in distinct)
    assert workers.consistent(state.copy_content()) and state.version() == updates


@pytest.mark.slow
def test_readers_never_see_a_partial_update_processes(sqlite_url: str) -> None:
    updates = 500
    readers = [spawn_worker("state-reader", sqlite_url, "torn", str(updates), "60") for _ in range(2)]
    writer = spawn_worker("state-writer", sqlite_url, "torn", str(updates), str(len(readers)))
    (written, *results) = finish([writer, *readers])
    assert written == {"written": updates}
    for result in results:
        assert result["torn"] == 0, result
        assert result["finished"], result
    assert max(result["distinct"] for result in results) > 1, results  # the readers did overlap the writer
    print("reads per reader:", [(result["reads"], result["distinct"]) for result in results])
