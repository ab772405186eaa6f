"""The rebuild's row prefetching thread: every item in order, errors handed over, an early stop stops it."""

import pytest

from readrate.workers.rebuild import _prefetched


def test_every_item_arrives_in_order_through_a_small_queue():
    assert list(_prefetched(iter(range(1000)), depth=2)) == list(range(1000))


def test_an_error_in_the_producer_is_raised_to_the_consumer_after_the_items_before_it():
    def items():
        yield 1
        yield 2
        raise RuntimeError("duckdb failed")

    got = []
    with pytest.raises(RuntimeError, match="duckdb failed"):
        for item in _prefetched(items()):
            got.append(item)
    assert got == [1, 2]


def test_a_consumer_that_stops_early_stops_the_producer_instead_of_leaving_it_blocked():
    produced = []

    def items():
        for n in range(10_000):
            produced.append(n)
            yield n

    rows = _prefetched(items(), depth=2)
    assert next(rows) == 0
    # The consumer gives up (an insert failed): close() joins the producer, so without the stop it would
    # hang here until pytest's timeout; with it the producer ends after the few items the queue held.
    rows.close()
    assert len(produced) < 10
