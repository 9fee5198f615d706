"""The training order is a function of (seed, epoch, rank), and a restart skips what was trained."""

from rcollapse.data.resumable_sampler import ResumableShuffleSampler


def test_order_depends_only_on_seed_and_epoch():
    a, b = ResumableShuffleSampler(10, seed=3, batch_size=2), ResumableShuffleSampler(10, seed=3, batch_size=2)
    a.set_epoch(4)
    b.set_epoch(4)
    assert list(a) == list(b) and sorted(a) == list(range(10))
    b.set_epoch(5)
    assert list(a) != list(b)


def test_restart_mid_epoch_yields_the_rest_of_that_epoch_once():
    full = ResumableShuffleSampler(10, seed=0, batch_size=3)
    full.set_epoch(2)
    resumed = ResumableShuffleSampler(10, seed=0, batch_size=3, skip_batches=2)
    resumed.set_epoch(2)
    assert list(resumed) == list(full)[6:]
    assert list(resumed) == list(full)  # the next epoch (same epoch number here) is whole again
    assert len(resumed) == 10


def test_replicas_share_the_rows_without_overlap():
    shards = []
    for rank in range(3):
        s = ResumableShuffleSampler(10, seed=1, batch_size=2, num_replicas=3, rank=rank)
        s.set_epoch(0)
        shards.append(list(s))
    assert all(len(shard) == 4 for shard in shards)  # padded to equal length, as DistributedSampler
    assert set().union(*shards) == set(range(10))
