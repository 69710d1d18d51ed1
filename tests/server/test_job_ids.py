"""Job ids: ULID content in Crockford base32, sorted by creation, unique."""

from __future__ import annotations

import base64
import os
import random
import threading

import pytest

from pushq.server import models
from pushq.server.models import _encode, id_floor, new_job_id

_TO_CROCKFORD = bytes.maketrans(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", b"0123456789ABCDEFGHJKMNPQRSTVWXYZ"
)


def test_the_encoding_is_base32_in_crockfords_alphabet() -> None:
    rng = random.Random(12)
    for value in [0, 1, (1 << 128) - 1, *(rng.getrandbits(128) for _ in range(2000))]:
        stdlib = base64.b32encode(value.to_bytes(16, "big"))[:26].translate(_TO_CROCKFORD)
        assert _encode(value) == stdlib.decode()


@pytest.fixture(autouse=True)
def fresh_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ids made here at fixed times: start from none made (and put back the process's
    last id afterwards, so later ids stay monotonic)."""
    monkeypatch.setattr(models, "_last_id_value", 0)


def test_ids_sort_by_creation_and_never_repeat() -> None:
    ids = [new_job_id(1_700_000_000.0 + i // 500) for i in range(10_000)]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    assert all(len(i) == 26 for i in ids)
    assert id_floor(1_700_000_000.0) <= ids[0] < id_floor(1_700_000_001.0)


def test_ids_made_on_several_threads_never_repeat() -> None:
    made: list[list[str]] = [[] for _ in range(4)]

    def make(out: list[str]) -> None:
        out.extend(new_job_id(1_700_000_000.0) for _ in range(5_000))  # one millisecond

    threads = [threading.Thread(target=make, args=(out,)) for out in made]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every = [i for out in made for i in out]
    assert len(set(every)) == len(every) == 20_000


def test_a_forked_child_draws_its_own_random_bits() -> None:
    read, write = os.pipe()
    new_job_id()  # the parent's pool is filled
    parents = models._pool
    pid = os.fork()
    if pid == 0:  # the child: report the pool its next id drew from
        new_job_id()
        os.write(write, models._pool[:10])
        os._exit(0)
    os.waitpid(pid, 0)
    childs = os.read(read, 10)
    os.close(read)
    os.close(write)
    assert len(childs) == 10 and childs != parents[:10]
