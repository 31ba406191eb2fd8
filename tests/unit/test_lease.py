"""One run per output: the lease on local disks and on S3 (moto on loopback), without Ray."""

import json
import subprocess
import sys
import threading
import time

import pytest

from model.storage import resolve
from pipeline.output.lease import (
    LEASE_FILE,
    FsspecStore,
    Holder,
    Lease,
    LeaseConfig,
    LeaseHeld,
    LocalStore,
    S3Store,
    clear_output,
    lease_store,
)


@pytest.fixture(params=["local", "s3"])
def output(request, tmp_path):
    """(store factory, output URI) on a local disk or an S3 bucket."""
    if request.param == "local":
        uri = str(tmp_path / "out")
        return (lambda: lease_store(*resolve(uri))), uri
    s3_server = request.getfixturevalue("s3_server")
    uri = f"{request.getfixturevalue('s3_bucket')}/out"
    return (lambda: lease_store(*resolve(uri, s3_server.storage_options))), uri


def test_a_second_run_is_refused_with_one_line_naming_the_holder_until_the_first_releases(output):
    store, uri = output
    assert isinstance(store(), LocalStore if "://" not in uri else S3Store)
    first = Lease(store(), uri, timeout=60)
    first.acquire()
    assert store().atomic
    second = Lease(store(), uri, timeout=60)
    with pytest.raises(LeaseHeld) as held:
        second.acquire(wait=0)
    message = str(held.value)
    assert "\n" not in message and f"pid {first.pid}" in message and first.host in message and uri in message
    first.release()
    second.acquire(wait=0)
    assert second.took_over is None
    second.release()
    assert store().read() is None


def test_a_lease_whose_heartbeat_is_too_old_is_taken_over(output):
    store, uri = output
    now = [1000.0]
    dead = Lease(store(), uri, timeout=60, clock=lambda: now[0])
    dead.host = "another-host"  # a process elsewhere: only the heartbeat's age tells
    dead.acquire()
    now[0] += 59
    with pytest.raises(LeaseHeld):
        Lease(store(), uri, timeout=60, clock=lambda: now[0]).acquire()
    now[0] += 2
    taker = Lease(store(), uri, timeout=60, clock=lambda: now[0])
    taker.acquire()
    assert taker.took_over.run == dead.run and taker.took_over.host == "another-host"
    dead.release()  # the dead run's release (were it only slow) does not remove the new holder's lease
    assert Holder.parse(store().read()[0]).run == taker.run
    taker.release()


def test_a_lease_of_a_process_gone_from_this_host_is_taken_over_at_once(output):
    store, uri = output
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    lease = Lease(store(), uri, timeout=3600)
    record = json.loads(lease._record())
    record.update(run="crashed", pid=int(gone.stdout))
    assert store().create(json.dumps(record).encode()) is not None
    lease.acquire(wait=0)
    assert lease.took_over.run == "crashed"
    lease.release()


def test_a_waiting_run_starts_when_the_holder_is_done(output):
    store, uri = output
    first = Lease(store(), uri, timeout=60)
    first.acquire()
    threading.Timer(0.5, first.release).start()
    lines = []
    second = Lease(store(), uri, timeout=0.8)  # polls every 0.1 s
    started = time.time()
    second.acquire(wait=30, on_wait=lines.append)
    assert 0.4 < time.time() - started < 20
    assert len(lines) == 1 and lines[0].startswith("waiting up to 30 s for the run holding")
    second.release()


def test_the_heartbeat_renews_the_lease_and_notices_when_another_run_took_it(output):
    store, uri = output
    lease = Lease(store(), uri, timeout=0.8)  # beats every 0.1 s
    lease.acquire()
    lost = threading.Event()
    lease.start_heartbeat(on_lost=lambda holder: lost.set())
    first = Holder.parse(store().read()[0]).heartbeat
    time.sleep(0.5)
    data, version = store().read()
    assert Holder.parse(data).heartbeat > first and not lost.is_set()
    other = json.loads(data)
    other.update(run="another", host="elsewhere")
    while store().replace(json.dumps(other).encode(), version) is None:  # a beat got in between: read again
        data, version = store().read()
    assert lost.wait(10) and lease.lost.run == "another"
    lease.release()
    assert Holder.parse(store().read()[0]).run == "another"  # not ours to delete


def test_of_many_runs_starting_at_once_exactly_one_gets_the_lease(output):
    store, uri = output
    results = []

    def start():
        lease = Lease(store(), uri, timeout=60)
        try:
            lease.acquire()
            results.append(lease)
        except LeaseHeld:
            results.append(None)

    threads = [threading.Thread(target=start) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [r for r in results if r is not None]
    assert len(results) == 8 and len(winners) == 1
    winners[0].release()


def test_of_runs_taking_over_a_dead_lease_at_once_exactly_one_wins(output):
    store, uri = output
    dead = Lease(store(), uri, timeout=1, clock=lambda: 0.0)
    dead.host = "elsewhere"
    dead.acquire()
    results = []

    def take():
        lease = Lease(store(), uri, timeout=60)
        try:
            lease.acquire()
            results.append(lease)
        except LeaseHeld:
            results.append(None)

    threads = [threading.Thread(target=take) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [r for r in results if r is not None]
    assert len(winners) == 1 and winners[0].took_over.run == dead.run
    winners[0].release()


def test_overwrite_keeps_the_lease(tmp_path):
    out = tmp_path / "out"
    lease = Lease(lease_store(*resolve(str(out))), str(out), timeout=60)
    lease.acquire()
    (out / "translations").mkdir()
    (out / "translations" / "a.parquet").write_bytes(b"x")
    (out / "report.json").write_text("{}")
    fs, root = resolve(str(out))
    clear_output(fs, root)
    assert sorted(p.name for p in out.iterdir()) == ["_lease.json", "_lease.lock"]
    lease.release()


def test_stores_without_conditional_writes_are_best_effort_and_say_so():
    fs, root = resolve("memory://lease-test/out")
    store = lease_store(fs, root)
    assert isinstance(store, FsspecStore) and not store.atomic
    lease = Lease(store, "memory://lease-test/out", timeout=60)
    lease.acquire()
    with pytest.raises(LeaseHeld):
        Lease(store, "memory://lease-test/out", timeout=60).acquire()
    lease.release()
    assert not fs.exists(f"{root}/{LEASE_FILE}")


def test_lease_settings_are_checked():
    with pytest.raises(ValueError, match="lease-timeout"):
        LeaseConfig(lease_timeout=0)
