from __future__ import annotations

import pytest

from mtls_operator.runtime.sharding import Shard, fnv64a, jump_hash, shard_of


def test_fnv64a_matches_the_published_test_vectors():
    assert fnv64a(b"") == 0xCBF29CE484222325
    assert fnv64a(b"a") == 0xAF63DC4C8601EC8C
    assert fnv64a(b"foobar") == 0x85944171F73967E8


def test_jump_hash_matches_a_reference_implementation():
    # ClickHouse's jumpConsistentHash over the same inputs (tests/queries/0_stateless/00580_*).
    cases = [((1, 1), 0), ((42, 57), 43), ((256, 1024), 520), ((3735883980, 1), 0), ((3735883980, 666), 361)]
    cases.append(((16045690984833335023, 255), 237))
    for (key, buckets), expected in cases:
        assert jump_hash(key, buckets) == expected


def test_every_certificate_has_exactly_one_shard_and_the_split_is_even():
    names = [(f"ns{i % 7}", f"cert-{i}") for i in range(3000)]
    shards = [Shard(i, 3) for i in range(3)]
    owners = [[s.index for s in shards if s.owns(ns, n)] for ns, n in names]
    assert all(len(o) == 1 for o in owners)
    sizes = [sum(1 for o in owners if o == [i]) for i in range(3)]
    assert all(900 < size < 1100 for size in sizes), sizes


def test_growing_the_shard_count_moves_only_the_new_shards_share():
    names = [("ns", f"cert-{i}") for i in range(4000)]
    moved = sum(1 for ns, n in names if shard_of(ns, n, 4) != shard_of(ns, n, 5))
    assert all(shard_of(ns, n, 5) == 4 for ns, n in names if shard_of(ns, n, 4) != shard_of(ns, n, 5))
    assert 0.15 < moved / len(names) < 0.25  # about 1/5


def test_one_shard_owns_everything_and_bad_indexes_are_refused():
    assert Shard().owns("any", "thing")
    with pytest.raises(ValueError, match="not in 0..1"):
        Shard(2, 2)
    with pytest.raises(ValueError):
        Shard(0, 0)


def test_the_shard_index_comes_from_a_statefulset_pod_name():
    from mtls_operator.runtime.settings import shard_index_from

    assert shard_index_from("mtls-operator-2") == 2
    assert shard_index_from("laptop") == 0
