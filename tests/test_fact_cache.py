"""The per-process fact cache: freshness across processes, at_least_revision, fail closed."""

from __future__ import annotations

import pytest

from models.changelog import Who
from models.database import Database
from models.errors import RevisionAhead, Unavailable
from models.fact_cache import FactCache
from policies.engine import PolicyInForce, load_policy
from policies.situations import situation_of
from service.core.store import Store

SYSTEM = Who(None, None)


class Deaf:
    """A watcher that never hears of other processes' commits."""

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def changed(self, revision: int) -> bool:
        return False


@pytest.fixture
def two_processes(database_url):
    """A store writing as one process, and the fact cache of another process whose watcher is deaf."""
    db_writer, db_reader = Database(database_url), Database(database_url)
    store = Store(db_writer, PolicyInForce(load_policy()))
    cache = FactCache(db_reader)
    cache.watcher = Deaf()
    yield store, cache
    cache.close()
    db_writer.dispose()
    db_reader.dispose()


def role(cache: FactCache, user: str, account: str, at_least: int | None = None) -> str | None:
    with cache.fresh(at_least):
        return situation_of(cache, "Account", user, {"id": account}).actor_role


def test_at_least_revision_reads_through_even_when_no_notification_arrives(two_processes):
    store, cache = two_processes
    store.create_account("acc_1", "One", "u_admin", SYSTEM)
    invited = store.invite("acc_1", "u_x", "collaborator", SYSTEM).revision
    assert role(cache, "u_x", "acc_1", at_least=invited) == "collaborator"
    removed = store.remove_member("acc_1", "u_x", SYSTEM).revision
    # Deaf and not asked for a revision: the cache still answers from what it read ...
    assert role(cache, "u_x", "acc_1") == "collaborator"
    # ... but asked for the removal's revision, it reads the change log first: no stale "allowed".
    assert role(cache, "u_x", "acc_1", at_least=removed) is None
    assert cache.revision == removed


def test_a_revision_not_yet_written_is_refused(two_processes):
    store, cache = two_processes
    revision = store.create_account("acc_1", "One", "u_admin", SYSTEM).revision
    with pytest.raises(RevisionAhead):
        cache.sync(revision + 1)


def test_far_behind_the_cache_starts_over(two_processes, monkeypatch):
    import models.fact_cache

    store, cache = two_processes
    store.create_account("acc_1", "One", "u_admin", SYSTEM)
    assert role(cache, "u_admin", "acc_1") == "admin"
    monkeypatch.setattr(models.fact_cache, "MAX_REPLAYED_CHANGES", 3)
    latest = 0
    for number in range(5):
        latest = store.invite("acc_1", f"u_{number}", "reader", SYSTEM).revision
    store.invite("acc_1", "u_late", "collaborator", SYSTEM)
    assert role(cache, "u_late", "acc_1", at_least=latest) == "collaborator"
    assert cache.revision == latest + 1


def test_the_sqlite_watcher_sees_other_connections_commits(tmp_path):
    url = f"sqlite:///{tmp_path / 'a.sqlite3'}"
    writer_db, reader_db = Database(url), Database(url)
    writer_db.migrate()
    store = Store(writer_db, PolicyInForce(load_policy()))
    cache = FactCache(reader_db)
    store.create_account("acc_1", "One", "u_admin", SYSTEM)
    assert role(cache, "u_x", "acc_1") is None
    store.invite("acc_1", "u_x", "reader", SYSTEM)
    assert role(cache, "u_x", "acc_1") == "reader"  # no at_least_revision needed on SQLite
    cache.close()


def test_an_unreadable_database_is_unavailable_never_a_guess(tmp_path):
    url = f"sqlite:///{tmp_path / 'a.sqlite3'}"
    db = Database(url)
    db.migrate()
    cache = FactCache(db)
    cache.sync()
    (tmp_path / "a.sqlite3").unlink()
    (tmp_path / "a.sqlite3").mkdir()  # the path now names a directory: nothing can be read
    db.dispose()
    cache._drop_connection()
    with pytest.raises(Unavailable):
        with cache.fresh():
            situation_of(cache, "Account", "u_x", {"id": "acc_1"})
