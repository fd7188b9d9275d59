"""The contract's small documents (service clients, access keys) and audit trail, on every
backend (see conftest)."""

from __future__ import annotations

import asyncio
import threading

from oauth_vault_mw.storage import AsyncStorage, Storage

from .test_contract import NOW

EVERY_BYTE = bytes(range(256))
THREADS = 8

# -- records --------------------------------------------------------------------------------


def test_get_missing_record(storage: Storage) -> None:
    assert storage.get_record("client", "ci") is None
    assert storage.list_records("client") == []


def test_put_get_overwrite(storage: Storage) -> None:
    assert storage.put_record("client", "ci", b"first") is True
    assert storage.get_record("client", "ci") == b"first"
    assert storage.put_record("client", "ci", b"second") is True
    assert storage.get_record("client", "ci") == b"second"
    assert storage.list_records("client") == [("ci", b"second")]


def test_only_if_absent_first_writer_wins(storage: Storage) -> None:
    assert storage.put_record("client", "ci", b"first", only_if_absent=True) is True
    assert storage.put_record("client", "ci", b"second", only_if_absent=True) is False
    assert storage.get_record("client", "ci") == b"first"
    assert storage.put_record("client", "ci", b"third") is True  # a plain put overwrites
    assert storage.get_record("client", "ci") == b"third"


def test_delete_record(storage: Storage) -> None:
    assert storage.delete_record("client", "ci") is False
    assert storage.put_record("client", "ci", b"x")
    assert storage.put_record("client", "other", b"y")
    assert storage.delete_record("client", "ci") is True
    assert storage.delete_record("client", "ci") is False
    assert storage.get_record("client", "ci") is None
    assert storage.list_records("client") == [("other", b"y")]
    assert storage.put_record("client", "ci", b"again", only_if_absent=True) is True


def test_list_is_sorted_by_code_point(storage: Storage) -> None:
    """Code point order, whatever the database's collation (PostgreSQL's may ignore case and
    punctuation)."""
    names = ["b", "a-b", "Z", "ab", "_x", "a", "B", "a_c", "0"]
    for name in names:
        assert storage.put_record("key", name, name.encode())
    assert storage.list_records("key") == [(n, n.encode()) for n in sorted(names)]
    assert [n for n, _ in storage.list_records("key")] == [
        "0", "B", "Z", "_x", "a", "a-b", "a_c", "ab", "b",
    ]  # fmt: skip


def test_kinds_are_apart(storage: Storage) -> None:
    assert storage.put_record("client", "ci", b"client")
    assert storage.put_record("client_key", "ci", b"key")
    assert storage.put_record("clients", "cd", b"other")
    assert storage.put_record("client", "ci", b"x", only_if_absent=True) is False
    assert storage.put_record("access_key", "ci", b"x", only_if_absent=True) is True
    assert storage.get_record("client", "ci") == b"client"
    assert storage.get_record("client_key", "ci") == b"key"
    assert storage.list_records("client") == [("ci", b"client")]
    assert storage.list_records("client_key") == [("ci", b"key")]
    assert storage.list_records("nothing") == []
    assert storage.delete_record("client", "ci")
    assert storage.get_record("client_key", "ci") == b"key"


def test_binary_data_round_trips(storage: Storage) -> None:
    values = {"all": EVERY_BYTE, "empty": b"", "nul": b"\x00", "high": EVERY_BYTE[::-1] * 40}
    for name, data in values.items():
        assert storage.put_record("blob", name, data)
    for name, data in values.items():
        assert storage.get_record("blob", name) == data
    assert storage.list_records("blob") == sorted(values.items())


def test_concurrent_only_if_absent_has_one_winner(sync_storage: Storage) -> None:
    barrier = threading.Barrier(THREADS)
    wins: list[int] = []

    def race(i: int) -> None:
        barrier.wait()
        if sync_storage.put_record("client", "ci", f"w{i}".encode(), only_if_absent=True):
            wins.append(i)

    threads = [threading.Thread(target=race, args=(i,)) for i in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(wins) == 1
    assert sync_storage.get_record("client", "ci") == f"w{wins[0]}".encode()


async def test_async_only_if_absent_has_one_winner(async_storage: AsyncStorage) -> None:
    won = await asyncio.gather(
        *(async_storage.put_record("client", "ci", b"%d" % i, only_if_absent=True)
          for i in range(THREADS))
    )  # fmt: skip
    assert won.count(True) == 1
    assert await async_storage.get_record("client", "ci") == b"%d" % won.index(True)


# -- events ---------------------------------------------------------------------------------


def test_no_events(storage: Storage) -> None:
    assert storage.read_events(0.0, 100) == []


def test_append_and_read_since(storage: Storage) -> None:
    batch = [(NOW + i, f"e{i}".encode()) for i in range(5)]
    storage.append_events(batch)
    assert storage.read_events(0.0, 100) == batch
    assert storage.read_events(NOW + 2, 100) == batch[2:]  # since is inclusive
    assert storage.read_events(NOW + 2.5, 100) == batch[3:]
    assert storage.read_events(NOW + 5, 100) == []  # since in the future


def test_events_come_oldest_first_whatever_the_append_order(storage: Storage) -> None:
    storage.append_events([(NOW + 3, b"c"), (NOW + 1, b"a")])
    storage.append_events([(NOW + 2, b"b")])
    assert storage.read_events(NOW, 10) == [(NOW + 1, b"a"), (NOW + 2, b"b"), (NOW + 3, b"c")]


def test_ties_keep_the_append_order(storage: Storage) -> None:
    """Same instant: append order, within a batch and across batches; equal events stay two."""
    storage.append_events([(NOW, b"z"), (NOW, b"a"), (NOW, b"m")])
    storage.append_events([(NOW, b"b"), (NOW, b"a")])
    storage.append_events([(NOW - 1, b"before"), (NOW + 1, b"after")])
    expected = [(NOW, d) for d in (b"z", b"a", b"m", b"b", b"a")]
    assert storage.read_events(NOW, 10) == [*expected, (NOW + 1, b"after")]
    assert storage.read_events(NOW - 1, 10) == [
        (NOW - 1, b"before"), *expected, (NOW + 1, b"after"),
    ]  # fmt: skip


def test_limit_keeps_the_newest(storage: Storage) -> None:
    storage.append_events([(NOW + i, b"%d" % i) for i in range(10)])
    assert storage.read_events(0.0, 3) == [(NOW + i, b"%d" % i) for i in (7, 8, 9)]
    assert storage.read_events(NOW + 8, 3) == [(NOW + 8, b"8"), (NOW + 9, b"9")]
    assert storage.read_events(0.0, 10) == storage.read_events(0.0, 11)
    assert len(storage.read_events(0.0, 10)) == 10
    assert storage.read_events(0.0, 0) == []


def test_limit_cuts_ties_in_append_order(storage: Storage) -> None:
    storage.append_events([(NOW, b"1"), (NOW, b"2"), (NOW, b"3"), (NOW - 5, b"old")])
    assert storage.read_events(0.0, 2) == [(NOW, b"2"), (NOW, b"3")]
    assert storage.read_events(0.0, 4) == [(NOW - 5, b"old"), (NOW, b"1"), (NOW, b"2"),
                                           (NOW, b"3")]  # fmt: skip


def test_empty_batch_is_a_no_op(storage: Storage) -> None:
    storage.append_events([])
    assert storage.read_events(0.0, 10) == []
    storage.append_events([(NOW, b"x")])
    storage.append_events([])
    assert storage.read_events(0.0, 10) == [(NOW, b"x")]


def test_event_data_and_times_round_trip(storage: Storage) -> None:
    at = [NOW + 0.123456789, NOW + 0.5, 0.1, 1e-9]
    batch = [(at[0], EVERY_BYTE), (at[1], b""), (at[2], b"a:b:\x00:c"), (at[3], b"\xff" * 3000)]
    storage.append_events(batch)
    assert storage.read_events(0.0, 10) == sorted(batch, key=lambda e: e[0])
    assert storage.read_events(at[0], 10) == [(at[0], EVERY_BYTE), (at[1], b"")]


def test_a_window_sized_batch_keeps_every_event_in_order(storage: Storage) -> None:
    """A batch as large as an audit window (more than one of Redis's ZADD chunks, one
    PostgreSQL statement over arrays): every event, its bytes whatever they are, ties in
    append order."""
    batch = [(NOW + i % 7, b"%d:" % i + EVERY_BYTE[i % 256 :]) for i in range(1000)]
    storage.append_events(batch)
    storage.append_events([(NOW, b"next")])
    found = storage.read_events(0.0, 2000)
    assert found == sorted([*batch, (NOW, b"next")], key=lambda e: e[0])  # a stable sort


def test_concurrent_appends_keep_every_event(sync_storage: Storage) -> None:
    barrier = threading.Barrier(THREADS)

    def append(i: int) -> None:
        barrier.wait()
        for j in range(5):
            sync_storage.append_events([(NOW, b"%d-%d" % (i, j)), (NOW + 1, b"%d-%d" % (i, j))])

    threads = [threading.Thread(target=append, args=(i,)) for i in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    found = sync_storage.read_events(0.0, 1000)
    expected = {b"%d-%d" % (i, j) for i in range(THREADS) for j in range(5)}
    assert len(found) == 2 * len(expected)
    assert {d for at, d in found if at == NOW} == expected
    assert [at for at, _ in found] == [NOW] * len(expected) + [NOW + 1] * len(expected)
    for i in range(THREADS):  # each thread's events of one instant in its append order
        mine = [d for at, d in found if at == NOW and d.startswith(b"%d-" % i)]
        assert mine == [b"%d-%d" % (i, j) for j in range(5)]
