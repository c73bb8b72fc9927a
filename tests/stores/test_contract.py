"""The behaviour every store backend must share."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from wasikv.errors import StoreError
from wasikv.stores import Store

from .conftest import StoreFactory

S64_MAX = 2**63 - 1
S64_MIN = -(2**63)


def run_threads(count: int, work: Callable[[], None]) -> None:
    """Run `work` on `count` threads started together; re-raise the first failure."""
    barrier = threading.Barrier(count)
    errors: list[BaseException] = []

    def target() -> None:
        barrier.wait()
        try:
            work()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=target) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


def cas_add_one(store: Store, key: str) -> None:
    """Add one to the counter at `key` with a get_versioned/swap retry loop."""
    while True:
        current = store.get_versioned(key)
        number = int(current.value) if current.value is not None else 0
        if store.swap(key, current.version, str(number + 1).encode()):
            return


class TestBasics:
    def test_missing_key(self, store: Store) -> None:
        assert store.get("nope") is None
        assert not store.exists("nope")
        store.delete("nope")  # not an error
        assert store.get("nope") is None

    def test_set_get_replace_delete(self, store: Store) -> None:
        store.set("a", b"1")
        assert store.get("a") == b"1"
        assert store.exists("a")
        store.set("a", b"2")
        assert store.get("a") == b"2"
        store.delete("a")
        assert store.get("a") is None
        assert not store.exists("a")
        store.set("a", b"3")
        assert store.get("a") == b"3"

    def test_empty_value_exists(self, store: Store) -> None:
        store.set("empty", b"")
        assert store.get("empty") == b""
        assert store.exists("empty")
        assert store.list_keys(None, 10) == ["empty"]
        assert store.get_many(["empty"]) == [b""]

    def test_binary_values(self, store: Store) -> None:
        value = bytes(range(256)) * 64
        store.set("bin", value)
        assert store.get("bin") == value

    @pytest.mark.parametrize("key", ["", "é", "ключ", "😀", "a b\tc\n", "nul\x00byte", "x" * 4096])
    def test_unusual_keys(self, store: Store, key: str) -> None:
        store.set(key, b"v")
        assert store.get(key) == b"v"
        assert store.exists(key)
        assert store.list_keys(None, 10) == [key]
        store.delete(key)
        assert not store.exists(key)

    def test_wrong_types_refused(self, store: Store) -> None:
        with pytest.raises(StoreError):
            store.set("k", "text")  # type: ignore[arg-type]
        with pytest.raises(StoreError):
            store.set(1, b"v")  # type: ignore[arg-type]
        assert store.list_keys(None, 10) == []


class TestListKeys:
    def test_empty_store(self, store: Store) -> None:
        assert store.list_keys(None, 10) == []
        assert store.list_keys("a", 10) == []

    def test_code_point_order_and_after(self, store: Store) -> None:
        keys = ["", "B", "a", "aa", "ab", "b", "é", "z", "\uffff", "😀", "Z", "a\x00"]
        for key in keys:
            store.set(key, b"")
        assert store.list_keys(None, 100) == sorted(keys)
        assert store.list_keys("a", 100) == [k for k in sorted(keys) if k > "a"]
        assert store.list_keys("", 100) == sorted(keys)[1:]
        assert store.list_keys("aa", 2) == ["ab", "b"]
        assert store.list_keys("zzz", 100) == ["é", "\uffff", "😀"]
        assert store.list_keys("😀", 100) == []

    def test_after_need_not_exist(self, store: Store) -> None:
        for key in ["a", "c", "e"]:
            store.set(key, b"")
        assert store.list_keys("b", 10) == ["c", "e"]

    def test_limit(self, store: Store) -> None:
        for key in ["a", "b", "c"]:
            store.set(key, b"")
        assert store.list_keys(None, 2) == ["a", "b"]
        assert store.list_keys(None, 0) == []
        assert store.list_keys(None, -1) == []

    def test_deleted_keys_hidden(self, store: Store) -> None:
        for key in ["a", "b", "c"]:
            store.set(key, b"")
        store.delete("b")
        store.delete("never")
        assert store.list_keys(None, 10) == ["a", "c"]
        store.set("b", b"")
        assert store.list_keys(None, 10) == ["a", "b", "c"]

    def test_paging_walk_visits_every_key_once(self, store: Store) -> None:
        keys = [f"key-{i:05d}-{chr(0x400 + i % 50)}" for i in range(2500)]
        store.set_many(list(reversed([(key, b"x") for key in keys])))
        seen: list[str] = []
        after: str | None = None
        pages = 0
        while True:
            page = store.list_keys(after, 1000)
            pages += 1
            seen.extend(page)
            if len(page) < 1000:
                break
            after = page[-1]
        assert seen == sorted(keys)
        assert pages == 3

    def test_walk_while_writing(self, store: Store) -> None:
        for i in range(100):
            store.set(f"k{i:03d}", b"")
        first = store.list_keys(None, 50)
        store.delete("k010")
        store.set("k0105", b"")  # sorts after k010
        store.set("a", b"")  # before the cursor: not seen
        rest = store.list_keys(first[-1], 1000)
        assert rest[0] == "k050"
        assert len(first) + len(rest) == 100


class TestIncrement:
    def test_missing_counts_as_zero(self, store: Store) -> None:
        assert store.increment("n", 5) == 5
        assert store.get("n") == b"5"

    def test_stored_as_decimal_text(self, store: Store) -> None:
        store.increment("n", 42)
        assert store.get("n") == b"42"

    def test_existing_text_value(self, store: Store) -> None:
        store.set("n", b"100")
        assert store.increment("n", 1) == 101
        assert store.get("n") == b"101"

    def test_negative_deltas(self, store: Store) -> None:
        assert store.increment("n", -3) == -3
        assert store.get("n") == b"-3"
        assert store.increment("n", 10) == 7
        assert store.increment("n", 0) == 7

    def test_s64_bounds_reachable(self, store: Store) -> None:
        assert store.increment("max", S64_MAX) == S64_MAX
        assert store.increment("min", S64_MIN) == S64_MIN
        store.set("m", str(S64_MIN).encode())
        assert store.increment("m", 1) == S64_MIN + 1

    @pytest.mark.parametrize(
        "raw", [b"abc", b"1.5", b"", b"01", b"+1", b" 1", b"1 ", b"-0", b"0x10", b"\xff", b"1e3"]
    )
    def test_non_decimal_refused_and_unchanged(self, store: Store, raw: bytes) -> None:
        store.set("n", raw)
        before = store.get_versioned("n")
        with pytest.raises(StoreError, match="not a decimal integer"):
            store.increment("n", 1)
        assert store.get_versioned("n") == before

    def test_out_of_range_value_refused(self, store: Store) -> None:
        store.set("n", str(S64_MAX + 1).encode())
        with pytest.raises(StoreError):
            store.increment("n", -1)
        assert store.get("n") == str(S64_MAX + 1).encode()

    @pytest.mark.parametrize(("start", "delta"), [(S64_MAX, 1), (S64_MIN, -1), (-1, S64_MIN)])
    def test_overflow_refused_and_unchanged(self, store: Store, start: int, delta: int) -> None:
        store.set("n", str(start).encode())
        before = store.get_versioned("n")
        with pytest.raises(StoreError, match="overflows"):
            store.increment("n", delta)
        assert store.get_versioned("n") == before

    def test_increment_changes_version(self, store: Store) -> None:
        store.set("n", b"1")
        pinned = store.get_versioned("n")
        store.increment("n", 0)
        assert store.get("n") == b"1"
        assert not store.swap("n", pinned.version, b"9")

    def test_increment_unsigned(self, store: Store) -> None:
        # 0.2.0-draft's u64 increment: the memory store does it in one step,
        # the others through the base class's compare-and-swap loop.
        assert store.increment_unsigned("u", 5) == 5
        assert store.get("u") == b"5"
        store.set("neg", b"-10")
        before = store.get_versioned("neg")
        with pytest.raises(StoreError, match="u64 result cannot hold"):
            store.increment_unsigned("neg", 3)
        assert store.get_versioned("neg") == before
        assert store.increment_unsigned("neg", 10) == 0
        store.set("bad", b"x")
        with pytest.raises(StoreError, match="not a decimal integer"):
            store.increment_unsigned("bad", 1)
        store.set("max", str(S64_MAX).encode())
        with pytest.raises(StoreError, match="overflows"):
            store.increment_unsigned("max", 1)
        assert store.get("max") == str(S64_MAX).encode()


class TestCas:
    def test_swap_succeeds_when_unchanged(self, store: Store) -> None:
        store.set("k", b"old")
        pinned = store.get_versioned("k")
        assert pinned.value == b"old"
        assert store.swap("k", pinned.version, b"new")
        assert store.get("k") == b"new"

    def test_swap_twice_with_one_pin_fails(self, store: Store) -> None:
        store.set("k", b"old")
        pinned = store.get_versioned("k")
        assert store.swap("k", pinned.version, b"one")
        assert not store.swap("k", pinned.version, b"two")
        assert store.get("k") == b"one"

    def test_versions_change_on_every_write(self, store: Store) -> None:
        store.set("k", b"same")
        first = store.get_versioned("k")
        assert store.get_versioned("k") == first
        store.set("k", b"same")
        assert store.get_versioned("k").version != first.version

    def test_aba_conflicts(self, store: Store) -> None:
        store.set("k", b"A")
        pinned = store.get_versioned("k")
        store.set("k", b"B")
        store.set("k", b"A")
        assert not store.swap("k", pinned.version, b"C")
        assert store.get("k") == b"A"

    def test_delete_conflicts(self, store: Store) -> None:
        store.set("k", b"A")
        pinned = store.get_versioned("k")
        store.delete("k")
        assert not store.swap("k", pinned.version, b"C")
        assert store.get("k") is None

    def test_delete_after_pin_of_absent_key_conflicts(self, store: Store) -> None:
        pinned = store.get_versioned("k")
        assert pinned.value is None
        store.set("k", b"x")
        store.delete("k")
        assert not store.swap("k", pinned.version, b"C")
        assert store.get("k") is None

    def test_create_after_pin_conflicts(self, store: Store) -> None:
        pinned = store.get_versioned("k")
        store.set("k", b"theirs")
        assert not store.swap("k", pinned.version, b"mine")
        assert store.get("k") == b"theirs"

    def test_absent_pin_then_swap_creates(self, store: Store) -> None:
        store.set("other", b"unrelated")
        pinned = store.get_versioned("k")
        store.set("other2", b"unrelated writes do not matter")
        assert pinned == store.get_versioned("k")
        assert store.swap("k", pinned.version, b"created")
        assert store.get("k") == b"created"

    def test_swap_after_delete_from_tombstone_pin(self, store: Store) -> None:
        store.set("k", b"x")
        store.delete("k")
        pinned = store.get_versioned("k")
        assert pinned.value is None
        assert store.swap("k", pinned.version, b"back")
        assert store.get("k") == b"back"

    def test_empty_value_versioned(self, store: Store) -> None:
        store.set("k", b"")
        pinned = store.get_versioned("k")
        assert pinned.value == b""
        assert store.swap("k", pinned.version, b"")
        assert store.get("k") == b""

    def test_batches_change_versions(self, store: Store) -> None:
        store.set("a", b"1")
        store.set("b", b"1")
        pin_a, pin_b = store.get_versioned("a"), store.get_versioned("b")
        store.set_many([("a", b"1")])
        store.delete_many(["b"])
        assert not store.swap("a", pin_a.version, b"2")
        assert not store.swap("b", pin_b.version, b"2")

    def test_tombstone_pruning_keeps_conflicts(self, make_store: StoreFactory) -> None:
        store = make_store(tombstone_window=10)
        absent = store.get_versioned("never-seen")
        store.set("k", b"v")
        live_pin = store.get_versioned("k")
        store.delete("k")
        tombstone_pin = store.get_versioned("k")
        created_pin = store.get_versioned("c")
        store.set("c", b"x")
        store.delete("c")
        # Enough deletes to sweep the tombstones of "k" and "c" several times over.
        for i in range(200):
            store.delete(f"filler{i}")
        assert store.get("k") is None
        assert not store.swap("k", live_pin.version, b"stale")
        assert not store.swap("k", tombstone_pin.version, b"stale")
        assert not store.swap("c", created_pin.version, b"stale")
        assert store.get("k") is None
        assert store.get("c") is None
        # A fresh pin still works for pruned, unknown and recently deleted keys.
        for key in ("k", "c", "brand-new", "filler199"):
            assert store.swap(key, store.get_versioned(key).version, b"fresh")
            assert store.get(key) == b"fresh"
        # The never-seen key's old watermark pin is refused once the watermark moved.
        assert not store.swap("never-seen", absent.version, b"stale")

    def test_pruning_keeps_recent_tombstones(self, make_store: StoreFactory) -> None:
        store = make_store(tombstone_window=20)
        for i in range(15):
            store.delete(f"old{i}")
        store.set("k", b"v")
        live_pin = store.get_versioned("k")
        store.delete("k")
        tombstone_pin = store.get_versioned("k")
        # A sweep runs in here, while the tombstone of "k" is younger than the window.
        for i in range(9):
            store.delete(f"new{i}")
        assert not store.swap("k", live_pin.version, b"stale")
        assert store.swap("k", tombstone_pin.version, b"back")


class TestBatches:
    def test_get_many_order_duplicates_missing(self, store: Store) -> None:
        store.set("a", b"1")
        store.set("b", b"")
        assert store.get_many(["b", "missing", "a", "b"]) == [b"", None, b"1", b""]
        assert store.get_many([]) == []

    def test_set_many_last_duplicate_wins(self, store: Store) -> None:
        store.set_many([("a", b"1"), ("b", b"2"), ("a", b"3")])
        assert store.get_many(["a", "b"]) == [b"3", b"2"]
        store.set_many([])

    def test_delete_many(self, store: Store) -> None:
        store.set_many([("a", b"1"), ("b", b"2"), ("c", b"3")])
        store.delete_many(["a", "c", "missing", "a"])
        assert store.list_keys(None, 10) == ["b"]
        store.delete_many([])

    def test_set_many_all_or_nothing(self, store: Store) -> None:
        store.set("a", b"old")
        with pytest.raises(StoreError):
            store.set_many([("a", b"new"), ("b", b"1"), ("c", None)])  # type: ignore[list-item]
        assert store.get_many(["a", "b", "c"]) == [b"old", None, None]

    def test_delete_many_all_or_nothing(self, store: Store) -> None:
        store.set_many([("a", b"1"), ("b", b"2")])
        with pytest.raises(StoreError):
            store.delete_many(["a", 7, "b"])  # type: ignore[list-item]
        assert store.get_many(["a", "b"]) == [b"1", b"2"]

    def test_atomic_batches_declared(self, store: Store) -> None:
        assert store.atomic_batches


class TestConcurrency:
    def test_threaded_increments(self, store: Store) -> None:
        def work() -> None:
            for _ in range(200):
                store.increment("n", 1)

        run_threads(8, work)
        assert store.get("n") == b"1600"

    def test_threaded_cas_loops(self, store: Store) -> None:
        def work() -> None:
            for _ in range(100):
                cas_add_one(store, "n")

        run_threads(4, work)
        assert store.get("n") == b"400"

    def test_threaded_mixed_writers_and_readers(self, store: Store) -> None:
        def writer() -> None:
            for i in range(100):
                store.set_many([(f"w{threading.get_ident()}-{i}", b"x")])
                store.list_keys(None, 50)
                store.get_many(["a", "b"])

        run_threads(4, writer)
        assert len(store.list_keys(None, 1000)) == 400


@pytest.fixture
def positioned(store: Store) -> Store:
    """`store`, if its backend implements change-feed positions yet."""
    if type(store).load_position is Store.load_position:
        pytest.skip(f"{type(store).__name__} does not implement change-feed positions (load/save_position)")
    return store


class TestPositions:
    def test_a_reader_that_never_saved_has_none(self, positioned: Store) -> None:
        assert positioned.load_position("reader") is None

    def test_save_replaces_forwards_and_backwards(self, positioned: Store) -> None:
        positioned.save_position("reader", 5)
        assert positioned.load_position("reader") == 5
        positioned.save_position("reader", 9)
        positioned.save_position("reader", 3)
        assert positioned.load_position("reader") == 3
        positioned.save_position("reader", 0)
        assert positioned.load_position("reader") == 0
        positioned.save_position("reader", S64_MAX)
        assert positioned.load_position("reader") == S64_MAX

    @pytest.mark.parametrize(
        "name", ["", "é", "😀", "nul\x00byte", '["app","web","notes/"]', "app\x00web", "x" * 400]
    )
    def test_names_are_arbitrary_and_independent(self, positioned: Store, name: str) -> None:
        positioned.save_position(name, 7)
        positioned.save_position(name + "\x00", 8)
        positioned.save_position("~" + name, 9)
        assert positioned.load_position(name) == 7
        assert positioned.load_position(name + "\x00") == 8
        assert positioned.load_position(name + "x") is None

    def test_a_position_is_neither_a_key_nor_a_change(self, positioned: Store) -> None:
        last = positioned.last_change()  # a feed that starts when first read starts here
        positioned.set("k", b"v")
        feed = positioned.changes(last, 10)
        assert [change.key for change in feed] == ["k"]
        positioned.save_position("k", 1)
        positioned.save_position("reader", 1)
        assert positioned.list_keys(None, 10) == ["k"]
        assert positioned.get("reader") is None and not positioned.exists("reader")
        assert positioned.get("k") == b"v"
        assert positioned.changes(last, 10) == feed
        assert positioned.last_change() == feed[-1].seq
        version = positioned.get_versioned("k").version
        positioned.save_position("k", 2)
        assert positioned.swap("k", version, b"w")  # saving a position wrote no key

    @pytest.mark.parametrize("seq", [-1, True, 1.0, "1", None, 2**63])
    def test_bad_positions_refused(self, positioned: Store, seq: object) -> None:
        with pytest.raises(StoreError):
            positioned.save_position("reader", seq)  # type: ignore[arg-type]
        assert positioned.load_position("reader") is None

    def test_bad_names_refused(self, positioned: Store) -> None:
        with pytest.raises(StoreError):
            positioned.save_position(b"reader", 1)  # type: ignore[arg-type]
        with pytest.raises(StoreError):
            positioned.load_position(None)  # type: ignore[arg-type]

    def test_threaded_saves(self, positioned: Store) -> None:
        def work() -> None:
            name = f"reader-{threading.get_ident()}"
            for seq in range(50):
                positioned.save_position(name, seq)
                assert positioned.load_position(name) == seq

        run_threads(4, work)
