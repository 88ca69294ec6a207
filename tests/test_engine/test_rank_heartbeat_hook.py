"""describe_stopped_ranks: which rank the heartbeats name when a
collective times out."""
import pytest

from mmitpn.engine.hooks import rank_heartbeat_hook as heartbeat


class FakeStore(dict):

    def check(self, keys):
        return all(k in self for k in keys)

    def get(self, key):
        return self[key].encode()


@pytest.fixture
def group(monkeypatch):
    """A 3-rank group seen from rank 0, with a store the test fills."""
    store, now = FakeStore(), 1000.

    def beat(rank, done, when):
        store[heartbeat._KEY.format(rank)] = f'{done} {when}'

    monkeypatch.setattr(heartbeat.dist, 'is_initialized', lambda: True)
    monkeypatch.setattr(heartbeat.dist, 'get_world_size', lambda: 3)
    monkeypatch.setattr(heartbeat.dist, 'get_rank', lambda: 0)
    monkeypatch.setattr(heartbeat, '_store', lambda: store)
    monkeypatch.setattr(heartbeat.time, 'time', lambda: now)
    return beat


def test_the_rank_behind_is_named(group):
    group(0, 5, 990.), group(1, 4, 960.), group(2, 5, 991.)
    assert heartbeat.describe_stopped_ranks() == (
        'rank 1 last finished iteration 4, 40 s ago; ranks 0, 2 finished '
        'iteration 5')


def test_at_the_same_iteration_the_reporting_rank_is_not_named(group):
    # Rank 2 wrote its heartbeat after rank 0 did, then stopped: rank 0,
    # which reports the timeout, is alive, so the oldest of the others is
    # named.
    group(0, 5, 950.), group(1, 5, 990.), group(2, 5, 960.)
    assert heartbeat.describe_stopped_ranks().startswith(
        'rank 2 last finished iteration 5, 40 s ago')


def test_silent_ranks_are_named(group):
    group(0, 2, 990.), group(1, 2, 995.)
    assert heartbeat.describe_stopped_ranks() == (
        'rank 2 never reported; ranks 0, 1 finished iteration 2')
