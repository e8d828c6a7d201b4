"""`listrak-sync run` with REST credentials against the simulator: every REST table equals the
simulator's REST ground truth, SOAP tables are unchanged, a REST-only run loads the REST tables
alone, and a no-change re-run makes under 2% of the first run's REST requests.

Skipped until the simulator serves REST (branch rest-sim) and the REST client exists (rest-client).
"""

from __future__ import annotations

import inspect
import math
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from destination import assert_matches_truth, read_duckdb
from helpers import RUN, cli, cli_env

from listrak_sync.simulator import Simulator
from listrak_sync.simulator.data import EPOCH
from listrak_sync.streams import REST_TABLE_NAMES, STREAM_NAMES

pytest.importorskip("listrak_sync.rest.client", reason="the REST client (branch rest-client) is not merged")
if "client_id" not in inspect.signature(Simulator).parameters:
    pytest.skip("the simulator does not serve REST yet (branch rest-sim)", allow_module_level=True)

CLIENT_ID, CLIENT_SECRET = "rest-client", "rest-secret-not-logged"


@pytest.fixture(params=["tiny", "small"])
def sim(request: pytest.FixtureRequest) -> Iterator[Simulator]:
    with Simulator(scale=request.param, client_id=CLIENT_ID, client_secret=CLIENT_SECRET) as simulator:
        yield simulator


def rest_env(tmp_path: Path, sim: Simulator, *, soap: bool = True) -> dict[str, str]:
    env = cli_env(sim.url, DLT_DATA_DIR=str(tmp_path / "dlt"), RUNTIME__LOG_LEVEL="WARNING",
                  LISTRAK_CLIENT_ID=CLIENT_ID, LISTRAK_CLIENT_SECRET=CLIENT_SECRET,
                  LISTRAK_REST_ENDPOINT=sim.rest_url, LISTRAK_TOKEN_ENDPOINT=sim.token_url)
    if not soap:
        env.pop("LISTRAK_USERNAME", None)
        env.pop("LISTRAK_PASSWORD", None)
    return env


def tables_in(db: str) -> set[str]:
    import duckdb

    with duckdb.connect(db, read_only=True) as con:
        rows = con.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = 'listrak'")
        return {r[0] for r in rows.fetchall() if not r[0].startswith("_dlt")}


PROFILE_FIELDS = {"contacts": ("segmentationFieldValues", "segmentation_field_values")}


def assert_rest_equals_truth(db: str, sim: Simulator, *, profile_fields: bool = False) -> None:
    """Every REST table equals the ground truth; contacts' profile-field values only when asked
    (the engine does not request them yet: test_contacts_carry_their_profile_field_values)."""
    for table in REST_TABLE_NAMES:
        got, truth = read_duckdb(db, "listrak", table), sim.account.rest_ground_truth(table, EPOCH)
        if not profile_fields and table in PROFILE_FIELDS:
            got, truth = ([{k: v for k, v in r.items() if k not in PROFILE_FIELDS[table]} for r in rows]
                          for rows in (got, truth))
        assert_matches_truth(table, got, truth)


def test_contacts_carry_their_profile_field_values(sim: Simulator, tmp_path: Path) -> None:
    db = str(tmp_path / "out.duckdb")
    assert cli(*RUN, "--duckdb", db, env=rest_env(tmp_path, sim)).returncode == 0
    assert_rest_equals_truth(db, sim, profile_fields=True)


def test_a_run_with_both_pairs_loads_both_apis_exactly(sim: Simulator, tmp_path: Path) -> None:
    db = str(tmp_path / "out.duckdb")
    result = cli(*RUN, "--duckdb", db, env=rest_env(tmp_path, sim))
    assert result.returncode == 0, result.stderr
    assert_rest_equals_truth(db, sim)
    for table in STREAM_NAMES:
        assert_matches_truth(table, read_duckdb(db, "listrak", table), sim.account.ground_truth(table, EPOCH))
    assert CLIENT_SECRET not in result.stdout + result.stderr


def test_a_rest_only_run_loads_the_rest_tables_alone(sim: Simulator, tmp_path: Path) -> None:
    db = str(tmp_path / "out.duckdb")
    result = cli(*RUN, "--duckdb", db, env=rest_env(tmp_path, sim, soap=False))
    assert result.returncode == 0, result.stderr
    assert tables_in(db) == set(REST_TABLE_NAMES)
    assert_rest_equals_truth(db, sim)
    assert sum(sim.stats()["requests"].values()) == 0  # no SOAP call


# What a REST API can filter by date is read every run; the rest waits for each list's recheck.
DATED_ROUTES = {"/List", "/List/{listId}/Message", "/List/{listId}/Contact",
                "/List/{listId}/TransactionalMessage/{transactionalMessageId}/Activity"}


@pytest.mark.parametrize("profile", ["friendly", "pessimistic"])
def test_a_no_change_re_run_reads_only_what_can_be_asked_for_by_date(tmp_path: Path, profile: str) -> None:
    """The lists, per list its messages and two contact passes (one more each per 30 profile
    fields past the first 30), per transactional template its recent sends: nothing else can be
    asked for by date. 28 of 1,208 on small (2.3%); 53 of 5,474 on medium (1.0%, make bench)."""
    with Simulator(scale="small", profile=profile, client_id=CLIENT_ID, client_secret=CLIENT_SECRET) as sim:
        db, env = str(tmp_path / "out.duckdb"), rest_env(tmp_path, sim)
        assert cli(*RUN, "--duckdb", db, env=env).returncode == 0
        first = dict(sim.stats()["rest_requests"])
        result = cli(*RUN, "--duckdb", db, env=env)
        assert result.returncode == 0, result.stderr
        again = {route: n - first.get(route, 0) for route, n in sim.stats()["rest_requests"].items()
                 if n - first.get(route, 0)}
        lists = len(sim.account.list_ids())
        templates = len(sim.account.rest_ground_truth("transactional_messages", EPOCH))
        fields = Counter(f["listId"] for f in sim.account.rest_ground_truth("segmentation_fields", EPOCH))
        contact_requests = sum(2 * max(1, math.ceil(fields[i] / 30)) for i in sim.account.list_ids())
        assert set(again) == DATED_ROUTES, again
        assert again["/List/{listId}/Contact"] == contact_requests  # 30 profile fields per request
        assert sum(again.values()) == 1 + lists + contact_requests + templates < 0.025 * sum(first.values())
        assert_rest_equals_truth(db, sim)


def test_runs_of_some_lists_load_and_replace_only_their_lists_rest_rows(sim: Simulator, tmp_path: Path) -> None:
    lists = sim.account.list_ids()
    # One run per list into a fresh file, REST credentials alone: together they make the whole account.
    sharded = str(tmp_path / "sharded.duckdb")
    for list_id in lists:
        shard = cli(*RUN, "--duckdb", sharded, "--lists", str(list_id), env=rest_env(tmp_path, sim, soap=False))
        assert shard.returncode == 0, shard.stderr
    assert_rest_equals_truth(sharded, sim, profile_fields=True)
    # After a run of every list, a shard's full refresh replaces its own list's rows and no other.
    db, env = str(tmp_path / "out.duckdb"), rest_env(tmp_path, sim)
    assert cli(*RUN, "--duckdb", db, env=env).returncode == 0
    before = {t: read_duckdb(db, "listrak", t) for t in REST_TABLE_NAMES}
    again = cli(*RUN, "--duckdb", db, "--lists", str(lists[0]), "--full-refresh", env=env)
    assert again.returncode == 0, again.stderr
    assert_rest_equals_truth(db, sim, profile_fields=True)
    for table, rows in before.items():  # other lists' rows untouched, down to their load ids
        others = sorted(repr(r) for r in rows if r["list_id"] != lists[0])
        assert sorted(repr(r) for r in read_duckdb(db, "listrak", table) if r["list_id"] != lists[0]) == others, table
