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


def test_a_cold_decision_reads_what_it_lacks_in_one_query_and_reads_it_right(two_processes):
    store, cache = two_processes
    store.create_account("acc_1", "One", "u_admin", SYSTEM)
    store.invite("acc_1", "u_x", "collaborator", SYSTEM)
    store.update_billing_settings("acc_1", {"auto_add_subscription_invoices_to_purchases": False}, SYSTEM)
    written, _ = store.add_support_agent("u_s", SYSTEM)
    reads = []
    fetch = cache._fetch
    cache._fetch = lambda read: reads.append(read) or fetch(read)
    cases = [  # (user, account, other user): (settings, role, support, other's role, other is support)
        (("u_x", "acc_1", None), ((False, False), "collaborator", False, None, False)),
        (("u_s", "acc_1", "u_admin"), ((False, False), None, True, "admin", False)),
        (("u_admin", "acc_1", "u_s"), ((False, False), "admin", False, None, True)),
        (("u_x", "acc_missing", "u_x"), (None, None, False, None, False)),
    ]
    for (user, account, other), (settings, role, support, other_role, other_support) in cases:
        with cache.fresh(written.revision):
            cache._forget()  # each case cold
            reads.clear()
            cache.prefetch(user, account, other)
            assert len(reads) == 1  # one statement for all of it
            assert cache.account_settings(account) == settings
            assert cache.role(user, account) == role
            assert cache.is_support_agent(user) is support
            if other is not None:
                assert cache.role(other, account) == other_role
                assert cache.is_support_agent(other) is other_support
            assert len(reads) == 1  # and nothing read again: the cache holds what the query answered
            cache.prefetch(user, account, other)
            assert len(reads) == 1
