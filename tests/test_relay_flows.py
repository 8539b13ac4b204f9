"""The relay's flow table: bounded, idle expiry, eviction of the oldest idle flow, O(1) lookups."""

from __future__ import annotations

import tracemalloc

import pytest

from voxwire.relay.flows import FlowTable, FlowTableConfig
from voxwire.wire.encap import pack_addr

TX = ("10.0.0.2", 4000)


def client(i: int) -> tuple[str, int]:
    return f"198.51.{i >> 16 & 0xFF}.{i >> 8 & 0xFF}", 1024 + (i & 0xFF)


def add(table: FlowTable, i: int, now: float):
    c = client(i)
    return table.add(c, pack_addr(c), TX, 7, now)


def test_add_get_and_counters():
    table = FlowTable()
    flow = add(table, 1, 10.0)
    assert flow is not None and table.get(client(1)) is flow
    assert flow.header == pack_addr(client(1)) and flow.transceiver == TX and flow.transceiver_id == 7
    assert flow.created == flow.last_seen == 10.0
    assert table.counters() == {
        "flows": 1, "flows_created": 1, "flows_expired": 0, "flows_evicted": 0, "flows_full_refused": 0
    }
    # Adding the same client again re-points the existing flow rather than duplicating it.
    again = table.add(client(1), pack_addr(client(1)), ("10.0.0.3", 4000), 8, 11.0)
    assert again is flow and flow.transceiver_id == 8 and len(table) == 1


def test_idle_flows_expire_active_ones_stay():
    table = FlowTable(FlowTableConfig(idle_timeout=60.0))
    quiet, busy = add(table, 1, 0.0), add(table, 2, 0.0)
    assert quiet is not None and busy is not None
    for t in range(1, 130):
        busy.last_seen = float(t)  # what the hot path does per datagram
        table.expire(float(t))
        if t < 60:
            assert table.get(client(1)) is quiet
    assert table.get(client(1)) is None and table.get(client(2)) is busy
    assert table.expired == 1


def test_expiry_happens_within_twice_the_timeout():
    table = FlowTable(FlowTableConfig(idle_timeout=10.0))
    flow = add(table, 1, 0.0)
    assert flow is not None
    flow.last_seen = 9.0
    t = 0.0
    while table.get(client(1)) is not None:
        t += 0.5
        table.expire(t)
    assert 19.0 <= t <= 29.0


def test_full_table_evicts_the_oldest_idle_flow_and_counts():
    table = FlowTable(FlowTableConfig(max_flows=3, evict_idle=2.0))
    a, b, c = (add(table, i, 0.0) for i in range(3))
    assert a and b and c
    a.last_seen = 9.5  # a is live; b is the oldest idle flow
    assert add(table, 3, 10.0) is not None
    assert table.get(client(1)) is None and table.get(client(0)) is a
    assert table.evicted == 1 and len(table) == 3


def test_full_table_of_live_flows_refuses_new_ones():
    table = FlowTable(FlowTableConfig(max_flows=4, evict_idle=2.0))
    flows = [add(table, i, 0.0) for i in range(4)]
    for f in flows:
        assert f is not None
        f.last_seen = 9.9
    assert add(table, 99, 10.0) is None
    assert table.full_refused == 1 and len(table) == 4
    assert all(table.get(client(i)) is flows[i] for i in range(4))


def test_flood_of_new_addresses_is_bounded_in_entries_and_memory():
    config = FlowTableConfig(max_flows=1000, evict_idle=0.0)
    table = FlowTable(config)
    # Warm up past the table size and the bounded header cache of encap.pack_addr (16,384 entries).
    tracemalloc.start()
    for i in range(17000):
        add(table, i, i * 0.001)
    before = tracemalloc.take_snapshot()
    for i in range(17000, 47000):
        add(table, i, i * 0.001)
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    relay_only = [tracemalloc.Filter(True, "*/voxwire/relay/*")]
    grown = sum(
        s.size_diff for s in after.filter_traces(relay_only).compare_to(before.filter_traces(relay_only), "filename")
    )
    assert len(table) == 1000
    assert table.evicted == 46000
    # A flow is a few hundred bytes: 30,000 more insertions must not have grown anything.
    assert grown < 16 * 1024, grown


@pytest.mark.parametrize("bad", [{"max_flows": 0}, {"idle_timeout": 0}, {"evict_idle": -1}, {"max_scan": 0}])
def test_config_is_validated(bad):
    with pytest.raises(ValueError):
        FlowTableConfig(**bad)
