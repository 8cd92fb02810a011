"""The capacity model and the simulation of bench/scale_sim.py, on fixed inputs.

Properties only, never timings: throughput grows with replicas until another component
stops it, the first limit is the one a toy input makes the cheapest to reach, proof and
storage sizes follow from their definitions, and the simulation obeys Little's law and
the CPU it is given.
"""

from __future__ import annotations

import importlib.util
import itertools
import math
import sys
from dataclasses import replace
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parents[2] / "bench" / "scale_sim.py"
_SPEC = importlib.util.spec_from_file_location("scale_sim", _PATH)
assert _SPEC is not None and _SPEC.loader is not None
sim = importlib.util.module_from_spec(_SPEC)
sys.modules["scale_sim"] = sim
_SPEC.loader.exec_module(sim)


def _costs(**changes: float) -> dict[str, object]:
    """The measured table with some figures replaced (toy inputs)."""
    out = dict(sim.COSTS)
    for name, value in changes.items():
        assert name in out, name
        out[name] = sim.Cost(value, out[name].unit, "toy")
    return out


MIX = sim.Workload(ingest_per_s=1.0, access_per_s=1.0, jurisdictions=10, largest_share=0.3)


def test_every_cost_names_its_source():
    for name, c in sim.COSTS.items():
        assert c.value > 0, name
        assert "bench/" in c.source or "issue 15" in c.source or "section" in c.source, name


def test_throughput_grows_with_replicas_until_the_sequencer_stops_it():
    # Everything but the replicas and the sequencer made nearly free: the sequencer is
    # the only other limit.
    costs = _costs(
        metadata_write_txn_s=1e-12,
        metadata_row_in_batch_s=1e-12,
        guard_session_s=1e-12,
        object_puts_per_s=1e15,
        custodian_cpu_per_ingest_s=1e-12,
        custodian_cpu_per_access_s=1e-12,
    )
    rates, firsts = [], []
    for n in range(1, 400, 7):
        layout = sim.Layout(replicas=n)
        rates.append(sim.max_throughput(MIX, layout, costs))
        firsts.append(sim.first_limit(MIX, layout, costs))
    assert firsts[0] == "replicas (CPU)"
    assert firsts[-1] == "sequencer"
    switch = firsts.index("sequencer")
    assert all(f == "replicas (CPU)" for f in firsts[:switch])
    assert all(f == "sequencer" for f in firsts[switch:])
    assert all(b > a for a, b in itertools.pairwise(rates[:switch]))
    assert all(math.isclose(r, rates[switch]) for r in rates[switch:])
    # the plateau is the sequencer's own limit: entries/s over entries per request
    entries_per_request = (MIX.ingest_per_s + 2 * MIX.access_per_s) / 2
    assert math.isclose(rates[-1], sim.log_entries_per_s(sim.Layout(), costs) / entries_per_request)


def test_a_log_per_jurisdiction_lifts_the_sequencer_by_the_busiest_share():
    one = sim.component_limits(MIX, sim.Layout())["sequencer"]
    per = sim.component_limits(MIX, sim.Layout(per_jurisdiction_logs=True))["sequencer"]
    assert math.isclose(per, one / MIX.largest_share)


@pytest.mark.parametrize(
    ("changes", "layout", "first"),
    [
        ({}, sim.Layout(), "replicas (CPU)"),
        ({"log_entries_per_s_at_1000": 1.0}, sim.Layout(), "sequencer"),
        ({"object_puts_per_s": 0.01}, sim.Layout(replicas=1000), "object store"),
        ({"metadata_write_txn_s": 1.0}, sim.Layout(replicas=1000), "metadata store"),
        ({"custodian_cpu_per_access_s": 1.0}, sim.Layout(replicas=1000), "custodians"),
        ({"guard_session_s": 100.0}, sim.Layout(replicas=1000), "guard journal"),
    ],
    ids=["replicas", "sequencer", "objects", "metadata", "custodians", "guard"],
)
def test_the_first_limit_is_named(changes, layout, first):
    assert sim.first_limit(MIX, layout, _costs(**changes)) == first


def test_segments_take_the_object_store_off_the_path():
    w = replace(MIX, ingest_per_s=1000.0, access_per_s=0.0, group=50)
    per_record = sim.limits(w, sim.Layout(segments=False))["object store"]
    segments = sim.limits(w, sim.Layout(segments=True))["object store"]
    assert math.isclose(per_record / segments, w.group)


def test_a_batch_api_costs_less_per_record_than_single_requests():
    single = sim.loads(replace(MIX, access_per_s=0.0))
    batched = sim.loads(replace(MIX, access_per_s=0.0, records_per_ingest=1000))
    for part in ("replicas (CPU)", "metadata store", "object store"):
        assert batched[part] < single[part], part


def test_units_needed_keep_every_unit_under_the_headroom():
    w = sim.scale_workload(batched=False)
    units = sim.units_needed(w, headroom=0.7)
    assert units["logs"] >= w.jurisdictions
    layout = sim.Layout(replicas=units["replicas"])
    assert sim.limits(w, layout)["replicas (CPU)"] <= 0.7
    assert sim.limits(w, replace(layout, replicas=units["replicas"] - 1))["replicas (CPU)"] > 0.7
    more = sim.units_needed(replace(w, access_per_s=2 * w.access_per_s), headroom=0.7)
    assert all(more[k] >= units[k] for k in units)


def test_zipf_shares():
    shares = sim.zipf_shares(100)
    assert math.isclose(sum(shares), 1.0)
    assert shares == sorted(shares, reverse=True)
    assert math.isclose(sim.zipf_share(100), shares[0])
    assert sim.zipf_share(1) == 1.0
    with pytest.raises(ValueError, match="at least one"):
        sim.zipf_share(0)


@pytest.mark.parametrize("size", [2, 3, 255, 256, 257, 65_536, 1_000_003])
def test_proof_sizes_follow_the_tree(size):
    got = sim.proof_bytes(size)
    assert 2 ** (got["inclusion_hashes"] - 1) < size <= 2 ** got["inclusion_hashes"]
    assert got["inclusion_bytes"] == 32 * got["inclusion_hashes"]
    # the tiles hold every level's hashes: the leaves, then one per 256 below
    levels, n = 0, size
    while n > 1:
        levels += n
        n = -(-n // 256)
    assert got["tile_bytes"] == 32 * levels


def test_proof_at_ten_billion_entries():
    assert sim.proof_bytes(10**10)["inclusion_hashes"] == 34
    with pytest.raises(ValueError, match="two entries"):
        sim.proof_bytes(1)


def test_storage_is_linear_in_records():
    per = {"metadata": 500.0, "log": 550.0, "blobs": 400.0}
    one, two = sim.storage(10**6, per), sim.storage(2 * 10**6, per)
    assert all(math.isclose(two[k], 2 * one[k]) for k in one)
    assert math.isclose(one["total"], 10**6 * 1450)


# -- the simulation ----------------------------------------------------------------------

LOG = sim.LogCost(batch_cpu=1e-4, entry_cpu=1e-5, wait=0.0)
FLOW = sim.Flow(
    client_cpu=2e-4,
    edge_cpu=3e-4,
    batch_cpu=2e-4,
    item_cpu=1e-4,
    batch_wait=0.0,
    appends=1,
    slots=1,
)


def test_one_client_alone_is_served_in_the_sum_of_its_costs():
    machine = sim.Machine(cores=2, workers=1, clients=1, client_processes=1, log=LOG)
    got = sim.simulate(FLOW, machine, seconds=2.0, warmup=0.1)
    alone = 2e-4 + 3e-4 + 2e-4 + 1e-4 + 1e-4 + 1e-5
    assert got.mean_batch == 1.0
    assert math.isclose(got.p50_ms, 1000 * alone, rel_tol=1e-6)
    assert math.isclose(got.per_s, 1 / alone, rel_tol=0.01)


def test_simulated_rate_obeys_littles_law_and_the_cores():
    machine = sim.Machine(cores=2, workers=2, clients=16, client_processes=4, log=LOG)
    got = sim.simulate(FLOW, machine, seconds=1.0, warmup=0.2)
    mean_latency = sum(got.latencies) / len(got.latencies)
    assert math.isclose(got.per_s * mean_latency, 16, rel_tol=0.05)
    assert got.per_s <= sim.cpu_bound(FLOW, machine, got.mean_batch) * 1.01
    assert got.mean_batch > 1  # sixteen clients make batches


def test_a_second_worker_helps_when_one_workers_lock_is_the_limit():
    heavy = replace(FLOW, edge_cpu=2e-3, client_cpu=1e-5)
    one = sim.Machine(cores=2, workers=1, clients=16, client_processes=4, log=LOG)
    got1 = sim.simulate(heavy, one, seconds=1.0, warmup=0.2)
    got2 = sim.simulate(heavy, replace(one, workers=2), seconds=1.0, warmup=0.2)
    assert got2.per_s > 1.5 * got1.per_s


def test_other_work_on_the_cores_slows_the_simulated_run():
    machine = sim.Machine(cores=2, workers=2, clients=16, client_processes=4, log=LOG)
    quiet = sim.simulate(FLOW, machine, seconds=0.5, warmup=0.1)
    busy = sim.simulate(FLOW, replace(machine, others=4.0), seconds=0.5, warmup=0.1)
    assert busy.per_s < quiet.per_s


def test_cores_are_shared_between_sessions_then_threads():
    cores = sim._Cores(sim._Sim(), cores=2, others=2.0)
    for _ in range(4):
        cores.run(1.0, "server", lambda: None)
    cores.run(1.0, "clients", lambda: None)
    rates = cores.rates()
    # four sessions busy: half a core each; the server's four bursts share its half
    assert math.isclose(rates["clients"], 0.5)
    assert math.isclose(rates["server"], 0.5 / 4)
    alone = sim._Cores(sim._Sim(), cores=2, others=0.0)
    alone.run(1.0, "server", lambda: None)
    assert alone.rates() == {"server": 1.0}  # never more than one core per burst


def test_the_plot_is_an_svg_with_a_line_per_component():
    xs = [1, 2, 4, 8]
    rows = sim.limits_by_replicas(MIX, sim.Layout(), xs)
    text = sim.svg(rows, xs, "title")
    assert text.startswith("<svg") and text.rstrip().endswith("</svg>")
    assert text.count("<polyline") == len(rows)
    assert rows["replicas (CPU)"] == sorted(rows["replicas (CPU)"])


def _store_json(workers: dict[str, int], batches: dict[str, float], cpu: dict[str, float]) -> dict:
    """bench/store.py's last line, as much of it as the replicas model reads."""
    return {
        "clients": 16,
        "workers_per_replica": workers,
        "setups": {s: {"batching": {"records_per_segment": batches[s]}} for s in batches},
        "cpu_ms_per_request": {s: {"ingest": cpu[s]} for s in cpu},
    }


def test_the_replicas_model_recovers_its_parameters_and_counts_processes_not_replicas() -> None:
    truth = sim.SplitModel(k=0.5, alpha=0.75, per_record_ms=3.0, per_batch_ms=15.0)

    def run(workers: dict[str, int]) -> dict:
        procs = {"pg_s3": workers["pg_s3"], "two_replicas": 2 * workers["two_replicas"]}
        return _store_json(
            workers,
            {s: truth.batch(16, p) for s, p in procs.items()},
            {s: truth.cpu_ms(16, p) for s, p in procs.items()},
        )

    got = sim.replicas_check(
        [run({"pg_s3": 1, "two_replicas": 1}), run({"pg_s3": 2, "two_replicas": 2})]
    )
    model = got["model"]
    assert model == pytest.approx(
        {"k": 0.5, "alpha": 0.75, "per_record_ms": 3.0, "per_batch_ms": 15.0}, rel=1e-3
    )
    for row in got["runs"]:
        assert row["cpu_ms_per_ingest"]["measured_over_predicted"] == pytest.approx(1.0, rel=1e-3)
    # One replica of 2 workers and two replicas of 1: the same processes, the same figures.
    one_of_two, two_of_one = (r for r in got["runs"] if r["setup"] in ("1 x 2", "2 x 1"))
    assert one_of_two["cpu_ms_per_ingest"]["predicted"] == pytest.approx(
        two_of_one["cpu_ms_per_ingest"]["predicted"]
    )
    # Fewer clients per process, smaller batches, more CPU per ingest.
    assert truth.batch(16, 4) < truth.batch(16, 2) < truth.batch(16, 1)
    assert truth.cpu_ms(16, 4) > truth.cpu_ms(16, 2) > truth.cpu_ms(16, 1)
    assert truth.batch(1, 64) == 1.0  # never below one record


def test_the_replicas_model_needs_two_spreads_and_reads_old_outputs() -> None:
    one = _store_json(2, {"pg_s3": 2.4, "two_replicas": 1.4}, {"pg_s3": 9.6, "two_replicas": 16.4})
    runs = sim.store_runs(one)  # an output from before the workers were split: one count
    assert [(r.replicas, r.workers, r.processes) for r in runs] == [(1, 2, 2), (2, 2, 4)]
    with pytest.raises(ValueError, match="two or more numbers of clients per process"):
        sim.replicas_check([one])
