"""Faults: the whole pipeline with the event streams on a real 3-master Redis Cluster.

`READRATE_REDIS_CLUSTER=1` puts the streams on the cluster (REDIS_URL is one node's URL)
and RQ's queue on the standalone Redis of READRATE_QUEUE_URL (RQ cannot run on a
cluster). Each test picks a key prefix whose shards live on all three masters, so
every path crosses nodes: a page `Emitter`, `readrate emit`, `readrate import` (MULTI
per shard), two `readrate worker` processes SIGKILLed while events flow, `worker
--burst`, `status`, `config set`, `dead replay`, and the sweep finding entries a plain
cluster client XADDed. Counters must equal an independent tally exactly. Outages: no
node answering is "Redis unreachable" (exit 3) and never breaks a page; one master
dying leaves the events the others stored reported as stored.
"""

from __future__ import annotations

import json
import random
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import pytest
from redis.cluster import RedisCluster
from rq import Queue, Worker

from cluster import PrivateCluster
from conftest import REDIS_URL
from helpers import (
    install,
    kill_hard,
    run_cli,
    snapshot,
    start_logged_worker,
    stop,
    tally,
    wait_for_listening_worker,
    wait_for_state,
    wait_until,
    wire_fields,
)
from readrate.events.connections import CLI, stream_client
from readrate.events.emitter import Emitter, PartlyStored
from readrate.events.errors import EmitError
from readrate.events.model import Read, Vote
from readrate.events.settings import Settings
from readrate.events.streamids import START_ID
from readrate.events.synthetic import traffic
from readrate.reports.localredis import free_port
from readrate.workers import reader as reader_module
from readrate.workers.aggregate import aggregate
from readrate.workers.db import make_engine
from readrate.workers.reader import BatchReader

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None or shutil.which("redis-cli") is None,
                                reason="redis-server and redis-cli are needed for a private Redis Cluster")

SHARDS = 4
EVENTS = 24_000
# Events per round trip of the Python emitter.
EMIT_CHUNK = 250
# Between two chunks: the events flow for about twenty seconds, long enough for every kill and restart.
EMIT_PAUSE_S = 0.08
BATCH_SIZE = 300
LEASE_MS = 1_000
KILLS = 4
CSV_LINES = 1_500


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@pytest.fixture(scope="module")
def cluster():
    with PrivateCluster() as running:
        yield running


@pytest.fixture
def streams(cluster):
    """A plain cluster client of the test's own (what a PHP page or redis-cli would be)."""
    client = RedisCluster.from_url(cluster.url)
    yield client
    client.close()


@pytest.fixture
def cluster_settings(cluster, streams, prefix, database_url):
    """Settings for the cluster, with a prefix (the test's own) whose shard streams live on every master."""
    chosen = spread_prefix(streams, prefix)
    settings = Settings.from_env({}, redis_url=cluster.url, cluster=True, queue_url=REDIS_URL,
                                 database_url=database_url, prefix=chosen, shards=SHARDS)
    yield replace(settings, batch_size=BATCH_SIZE, lease_ms=LEASE_MS)
    keys = list(streams.scan_iter(f"*{chosen}*", count=1000))
    for key in keys:  # one key a call: the keys hash to different slots
        streams.delete(key)


def spread_prefix(streams: RedisCluster, base: str) -> str:
    """`base`, or `base-N`, whichever first puts the shards' streams on every master (the `prefix`
    fixture deletes the queue Redis's keys that contain `base`)."""
    masters = {node.name for node in streams.get_primaries()}
    for n in range(1000):
        candidate = base if n == 0 else f"{base}-{n}"
        owners = {streams.get_node_from_key(f"{{{candidate}:{shard}}}:events").name for shard in range(SHARDS)}
        if owners == masters:
            return candidate
    raise AssertionError("no prefix spreads the shards over every master")


def cluster_env() -> dict[str, str]:
    """What a child process needs besides env_for(): the streams on the cluster, the queue beside it."""
    return {"READRATE_REDIS_CLUSTER": "1", "READRATE_QUEUE_URL": REDIS_URL}


def cli(settings: Settings, *args: str, **extra_env: str):
    result = run_cli(settings, *args, **cluster_env(), **extra_env)
    assert "Traceback" not in result.stderr, result.stderr
    return result


def set_up(settings: Settings):
    """`readrate db upgrade` on the cluster: the installation in the database and on the cluster."""
    result = cli(settings, "db", "upgrade")
    assert result.returncode == 0, result.stderr
    return make_engine(settings.database_url)


def csv_events(start_ms: int, rng: random.Random) -> list:
    """Reads and votes for the import, on the traffic's articles; voters of their own."""
    events = []
    for i in range(CSV_LINES):
        article = f"article-{rng.randrange(40):05d}"
        at_ms = start_ms - rng.randrange(2 * 86_400_000)
        if i % 3:
            events.append(Read(article, at_ms, f"csv-visitor-{rng.randrange(200)}"))
        else:
            events.append(Vote(article, at_ms, f"csv-voter-{i}", float(rng.randint(1, 5))))
    return events


def write_csv(path, events) -> None:
    lines = ["kind,article,at,visitor,rating"]
    for e in events:
        if isinstance(e, Vote):
            lines.append(f"vote,{e.article_id},{e.at_ms},{e.voter},{int(e.rating)}")
        else:
            lines.append(f"read,{e.article_id},{e.at_ms},{e.visitor},")
    path.write_text("\n".join(lines) + "\n")


def test_counters_are_exact_on_a_three_master_cluster_with_two_workers_sigkilled_while_events_flow(
        cluster_settings, streams, redis, tmp_path):
    settings = cluster_settings
    engine = set_up(settings)
    start_ms = now_ms()
    rng = random.Random(1942)
    generated = list(traffic(events=EVENTS, articles=400, days=2, now_ms=start_ms, seed=9, vote_share=0.25))
    imported = csv_events(start_ms, rng)
    write_csv(tmp_path / "events.csv", imported)
    by_hand = [Read("article-00001", start_ms - 5_000, "cli-visitor"), Read("by-hand-only", start_ms - 4_000, None),
               Vote("article-00002", start_ms - 3_000, "cli-voter-1", 5.0),
               Vote("article-00002", start_ms - 2_000, "cli-voter-1", 2.0),
               Vote("by-hand-only", start_ms - 1_000, "cli-voter-2", 3.0)]
    # The Python emitter, `readrate import` and `readrate emit` use voters of their own: no vote's order
    # depends on which of them came first.
    expected = tally([wire_fields(e) for e in [*generated, *imported, *by_hand]])
    # A page's 0.25 s socket timeout could lose a chunk on a busy 2-core machine, and the tally would not know
    # (the status and page tests use the page's client): this emitter waits as the CLI does.
    emitter = Emitter.from_settings(settings, strict=True, redis=stream_client(settings.redis_url, CLI, cluster=True))

    def flow() -> None:
        """Events for a while: the page's chunks, an import (run twice: the re-run resumes), a few by hand."""
        chunks = [generated[i:i + EMIT_CHUNK] for i in range(0, EVENTS, EMIT_CHUNK)]
        for number, chunk in enumerate(chunks):
            assert emitter.emit_many(chunk) == len(chunk)
            time.sleep(EMIT_PAUSE_S)
            if number == len(chunks) // 3:
                first = cli(settings, "import", str(tmp_path / "events.csv"))
                assert first.returncode == 0 and f"imported {CSV_LINES:,} events" in first.stderr, first.stderr
                again = cli(settings, "import", str(tmp_path / "events.csv"))
                assert again.returncode == 0 and f"{CSV_LINES:,} events already stored" in again.stderr, again.stderr
            if number == len(chunks) // 2:
                for event in by_hand:
                    if isinstance(event, Vote):
                        args = ["vote", event.article_id, str(int(event.rating)), "--voter", event.voter]
                    else:
                        args = ["read", event.article_id] + (["--visitor", event.visitor] if event.visitor else [])
                    done = cli(settings, "emit", *args, "--at", str(event.at_ms))
                    assert done.returncode == 0, done.stderr

    names = [f"{settings.prefix}-worker-0", f"{settings.prefix}-worker-1"]  # the prefix fixture deletes their keys
    logs = [tmp_path / f"{name}.log" for name in names]
    workers = [start_logged_worker(settings, log, "--name", name, **cluster_env()) for name, log in zip(names, logs)]
    try:
        wait_for_listening_worker(redis, settings)
        with ThreadPoolExecutor(max_workers=1) as pool:
            flowing = pool.submit(flow)
            for kill in range(KILLS):
                # SIGKILL each worker in turn in the middle of a drain job: somewhere in a batch, its commit or
                # its XTRIM, while events keep coming.
                which = kill % 2
                time.sleep(rng.uniform(0.5, 3.0))
                wait_until(lambda: draining(redis, settings, names[which]) or workers[which].poll() is not None
                           or flowing.done(), timeout=60, interval=0.01, message=f"{names[which]} to drain")
                if flowing.done():
                    flowing.result()  # the flow's own failure, if it failed
                    raise AssertionError(f"the events stopped flowing before kill {kill + 1}")
                kill_hard(workers[which])
                assert workers[which].returncode == -9, logs[which].read_text()[-3000:]
                workers[which] = start_logged_worker(settings, logs[which], "--name", names[which], **cluster_env())
            flowing.result()
        assert emitter.stats.emitted == EVENTS and emitter.stats.failed == 0
        wait_for_state(engine, expected, timeout=240)
        wait_until(lambda: cluster_backlog(streams, settings) == 0, timeout=60, message="the streams to be trimmed")
        assert snapshot(engine)["stats"]["by-hand-only"] == (1, 1, 3.0)
    finally:
        codes = [stop(worker) for worker in workers]
        engine.dispose()
    for code, log in zip(codes, logs):
        assert code == 0, log.read_text()[-3000:]
        assert "Traceback" not in log.read_text(), log.read_text()[-3000:]


def draining(redis, settings: Settings, name: str) -> bool:
    """True while the worker called `name` runs a drain job (RQ's registration on the queue Redis)."""
    for worker in Worker.all(queue=Queue(settings.keys.queue, connection=redis)):
        if worker.name == name and worker.get_current_job_id() is not None:
            return True
    return False


def cluster_backlog(streams: RedisCluster, settings: Settings) -> int:
    return sum(streams.xlen(settings.keys.stream(shard)) for shard in range(settings.shards))


def test_status_shows_the_backlog_of_every_shard_and_the_fullest_masters_memory(cluster_settings, streams):
    settings = cluster_settings
    set_up(settings).dispose()
    emitter = Emitter.from_settings(settings, strict=True)
    events = list(traffic(events=600, articles=50, days=1, now_ms=now_ms(), seed=3))
    assert emitter.emit_many(events) == len(events)
    per_shard = [streams.xlen(settings.keys.stream(shard)) for shard in range(SHARDS)]
    # Each master has its own settings, and a client asks one node (its default) unless told otherwise. The
    # default node persists, another has a maxmemory limit: status must show the fullest master's memory
    # and warn of the masters that do not persist.
    default = streams.get_default_node()
    limited = next(node for node in streams.get_primaries() if node.name != default.name)
    limit = 512 * 1_048_576
    streams.config_set("maxmemory", limit, target_nodes=limited)
    streams.config_set("appendonly", "yes", target_nodes=default)
    try:
        result = cli(settings, "status", "--format", "json")
    finally:
        streams.config_set("maxmemory", 0, target_nodes=RedisCluster.PRIMARIES)
        streams.config_set("appendonly", "no", target_nodes=RedisCluster.PRIMARIES)
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["backlog"] == len(events)
    assert [s["backlog"] for s in doc["shards"]] == per_shard
    assert all(s["lag_s"] > 0 for s in doc["shards"] if s["backlog"])
    assert doc["memory"]["max_bytes"] == limit and doc["memory"]["used_bytes"] > 0
    assert doc["queued_jobs"] >= 1  # the emitter enqueued drains on the queue Redis
    assert any("no persistence" in w for w in doc["warnings"]), doc["warnings"]


def test_dead_letters_made_on_the_cluster_are_replayed_after_the_scale_is_widened(cluster_settings, streams):
    settings = cluster_settings
    engine = set_up(settings)
    t = now_ms() - 60_000
    shard = settings.keys.shard_of("article-9")
    stream = settings.keys.stream(shard)
    good = {b"k": b"read", b"a": b"article-9", b"t": str(t).encode()}
    nine = {b"k": b"vote", b"a": b"article-9", b"t": str(t + 1).encode(), b"v": b"voter-9", b"r": b"9"}
    streams.xadd(stream, good)
    streams.xadd(stream, nine)
    streams.xadd(stream, {b"k": b"read", b"t": str(t).encode()})  # no article: fails for good
    burst = cli(settings, "worker", "--burst")
    assert burst.returncode == 0 and "2 rejected" in burst.stderr, burst.stderr
    assert snapshot(engine)["stats"] == {"article-9": (1, 0, 0.0)}
    # The installation's scale changes, so the explicit READRATE_RATING_SCALE of env_for() is dropped.
    follow = {"READRATE_RATING_SCALE": ""}
    changed = cli(settings, "config", "set", "rating-scale", "1-10", **follow)
    assert changed.returncode == 0, changed.stderr
    replayed = cli(settings, "dead", "replay", "--all", "--format", "json", **follow)
    assert replayed.returncode == 0, replayed.stderr
    doc = json.loads(replayed.stdout)
    assert (doc["replayed"], doc["still_failing"]) == (1, 1)
    assert "'a' is missing" in doc["rows"][0]["reason"]
    assert streams.xlen(stream) == 1
    burst = cli(settings, "worker", "--burst", **follow)
    assert burst.returncode == 0 and "0 rejected" in burst.stderr, burst.stderr
    assert snapshot(engine) == tally([good, nine])
    again = cli(settings, "dead", "replay", "--all", "--format", "json", **follow)
    assert json.loads(again.stdout)["replayed"] == 0
    assert streams.xlen(stream) == 0
    engine.dispose()


def test_the_sweep_drains_what_a_plain_cluster_client_xadded_without_doorbell_or_job(
        cluster_settings, streams, redis, tmp_path):
    settings = cluster_settings
    engine = set_up(settings)
    log = tmp_path / "worker.log"
    worker = start_logged_worker(settings, log, **cluster_env())
    try:
        wait_for_listening_worker(redis, settings)
        t = now_ms() - 10_000
        entries = []
        for i in range(40):  # every shard, so every master, gets some
            article = f"plain-{i}".encode()
            entries.append({b"k": b"read", b"a": article, b"t": str(t + i).encode(), b"v": b"php"})
            if i % 4 == 0:
                entries.append({b"k": b"vote", b"a": article, b"t": str(t + i).encode(), b"v": b"php",
                                b"r": b"4"})
        for fields in entries:
            streams.xadd(settings.keys.stream(settings.keys.shard_of(fields[b"a"].decode())), fields)
        assert {settings.keys.shard_of(f"plain-{i}") for i in range(40)} == set(range(SHARDS))
        wait_for_state(engine, tally(entries), timeout=60)
        wait_until(lambda: cluster_backlog(streams, settings) == 0, timeout=30, message="the streams to be trimmed")
    finally:
        code = stop(worker)
        engine.dispose()
    assert code == 0, log.read_text()[-3000:]
    assert "Traceback" not in log.read_text(), log.read_text()[-3000:]


def test_the_batch_reader_gets_raw_xrange_replies_from_every_master(cluster_settings, streams, monkeypatch):
    """The drain folds flat `[name, value, …]` lists in place; a cluster client parsed them into dicts."""
    settings = cluster_settings
    seen = []

    def spy(entries, **options):
        seen.append(type(entries[0][1]))
        return aggregate(entries, **options)

    monkeypatch.setattr(reader_module, "aggregate", spy)
    t = now_ms()
    for shard in range(SHARDS):
        streams.xadd(settings.keys.stream(shard), {"k": "read", "a": f"raw-{shard}", "t": str(t)})
    reader = BatchReader.connect(settings, batch_size=10, scale=settings.rating_scale)
    try:
        assert [reader.read(settings.keys.stream(shard), START_ID).entries for shard in range(SHARDS)] == [1] * SHARDS
    finally:
        reader.close()
    assert seen == [list] * SHARDS


def test_commands_exit_3_when_no_node_of_the_cluster_answers_and_2_when_redis_is_no_cluster(cluster_settings):
    nobody = replace(cluster_settings, redis_url=f"redis://127.0.0.1:{free_port()}/0")
    for args in (["status"], ["emit", "read", "article-1"], ["import", "-"], ["worker", "--burst"]):
        result = cli(nobody, *args, input="kind,article,at\nread,a,1\n")
        assert result.returncode == 3, (args, result.stderr)
        assert "Redis is unreachable" in result.stderr and "bug" not in result.stderr, (args, result.stderr)
    standalone = replace(cluster_settings, redis_url=REDIS_URL)
    result = cli(standalone, "status")
    assert result.returncode == 2 and "not a node of a Redis Cluster" in result.stderr, result.stderr


def test_a_pages_emitter_made_while_the_cluster_is_down_stores_events_once_it_is_up(prefix, sqlite_url):
    later = PrivateCluster()  # its ports are chosen; nothing listens on them yet
    try:
        settings = Settings.from_env({}, redis_url=later.url, cluster=True, queue_url=REDIS_URL,
                                     database_url=sqlite_url, prefix=prefix)
        page = Emitter.from_settings(settings)  # a page starting up must not break
        strict = Emitter.from_settings(settings, strict=True)
        assert page.read("article-1") is False and page.stats.failed == 1
        with pytest.raises(EmitError):
            strict.read("article-1")
        later.start()
        client = RedisCluster.from_url(later.url)
        install(client, settings)
        assert page.read("article-1") is True and strict.read("article-1") is True
        assert client.xlen(settings.keys.stream(settings.keys.shard_of("article-1"))) == 2
        client.close()
    finally:
        later.stop()


def test_when_one_master_dies_the_events_the_others_stored_are_reported_stored(prefix, sqlite_url):
    with PrivateCluster() as own:  # a master is killed: not the module's cluster
        client = RedisCluster.from_url(own.url)
        settings = Settings.from_env({}, redis_url=own.url, cluster=True, queue_url=REDIS_URL,
                                     database_url=sqlite_url, prefix=spread_prefix(client, prefix), shards=SHARDS)
        install(client, settings)
        emitter = Emitter.from_settings(settings, strict=True)
        events = [emitter.make_read(f"article-{i}") for i in range(200)]
        home = {shard: client.get_node_from_key(settings.keys.stream(shard)).name for shard in range(SHARDS)}
        victim = next(node.name for node in client.get_primaries()
                      if node.name != client.get_node_from_key(settings.keys.installation).name)
        lost = [e for e in events if home[settings.keys.shard_of(e.article_id)] == victim]
        process = own.processes[own.addresses.index(victim)]
        process.kill()
        process.wait()
        with pytest.raises(PartlyStored) as caught:
            emitter.emit_many(events)
        assert caught.value.stored == len(events) - len(lost) > 0 and len(lost) > 0
        assert (emitter.stats.emitted, emitter.stats.failed) == (len(events) - len(lost), len(lost))
        stored = sum(client.xlen(settings.keys.stream(s)) for s in range(SHARDS) if home[s] != victim)
        assert stored == caught.value.stored
        client.close()


def test_visitor_reads_go_through_the_repeat_script_on_every_master_and_repeats_are_dropped(cluster_settings, streams):
    """The read-interval rule is a script on the shard's slot: it must reach the master of that slot."""
    settings = cluster_settings
    set_up(settings).dispose()
    emitter = Emitter.from_settings(settings, strict=True)
    articles = [f"article-{n}" for n in range(24)]
    assert {settings.keys.shard_of(a) for a in articles} == set(range(SHARDS))

    assert [emitter.read(a, visitor="v-1") for a in articles] == [True] * len(articles)
    assert [emitter.read(a, visitor="v-1") for a in articles] == [False] * len(articles)  # repeats

    assert (emitter.stats.emitted, emitter.stats.ignored, emitter.stats.failed) == (24, 24, 0)
    assert sum(streams.xlen(settings.keys.stream(shard)) for shard in range(SHARDS)) == 24
