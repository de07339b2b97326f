"""Process-local caches of rarely changing rows that still follow every change at once.

Each web and worker process keeps what it read (routes, gateways, API keys, customers) in
memory, tagged with a *generation*: a counter in the shared cache (Redis in production) that
a change bumps once its transaction commits. A request or task reads every counter once, in
one cache GET; when a counter moved, the process forgets what it had and reads the database
again. So an edit made in the admin reaches the next request in every process, with no restart.

Changes through the ORM bump the counter on their own: model saves and deletes through
signals (`invalidate_on_change`), queryset updates and deletes through `InvalidatingQuerySet`.
The process making a change also forgets its own entries at once.

If the shared cache cannot be reached the local cache is bypassed (every read goes to the
database) and a write that cannot bump the counter is logged. Entries also expire after
`max_age` seconds, which bounds how stale a value can get if a change ever bypasses the
ORM (raw SQL), or if a value read inside a transaction that later rolled back was kept.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Hashable
from typing import Any, Generic, TypeVar, overload

from celery.signals import task_postrun, task_prerun
from django.core.cache import cache
from django.core.signals import request_finished, request_started
from django.db import models, transaction
from django.db.models.signals import post_delete, post_save

logger = logging.getLogger(__name__)

V = TypeVar("V")
M = TypeVar("M", bound=models.Model)

_KEY_PREFIX = "generation:"


_unit = threading.local()


def begin_unit(**_: object) -> None:
    """A request or a task begins: its first read fetches every generation, later reads reuse them.

    So a request or task costs one round trip to the shared cache however many cached
    things it reads, and sees one consistent generation throughout.
    """
    _unit.generations = {}


def end_unit(**_: object) -> None:
    _unit.generations = None


request_started.connect(begin_unit, dispatch_uid="localcache-begin-request")
request_finished.connect(end_unit, dispatch_uid="localcache-end-request")
task_prerun.connect(begin_unit, weak=False, dispatch_uid="localcache-begin-task")
task_postrun.connect(end_unit, weak=False, dispatch_uid="localcache-end-task")


def _current(name: str) -> int | None:
    """The generation of `name` now; None if the shared cache cannot be reached."""
    memo: dict[str, int | None] | None = getattr(_unit, "generations", None)
    if memo is not None and name in memo:
        return memo[name]
    generations = _fetch({name, *_registry})
    if memo is not None:
        memo.update(generations)
    return generations[name]


def _fetch(names: set[str]) -> dict[str, int | None]:
    keys = {_KEY_PREFIX + name: name for name in names}
    try:
        values = cache.get_many(list(keys))
        for key in keys.keys() - values.keys():
            # Never seen, or the shared cache lost it (a restart): start from a value no process
            # can hold from before, so every local cache reloads.
            cache.add(key, _fresh_value(), timeout=None)
            values[key] = cache.get(key)
    except Exception:
        logger.warning("shared cache unavailable; reading cached rows from the database", exc_info=True)
        return dict.fromkeys(names)
    return {name: int(values[key]) if values.get(key) is not None else None for key, name in keys.items()}


def _fresh_value() -> int:
    return time.time_ns() // 1000


_registry: dict[str, list[LocalCache[Any]]] = {}


def bump(name: str) -> None:
    """Invalidate `name` in this process now and in every process once the transaction commits."""
    for local in _registry.get(name, []):
        local.clear()
    transaction.on_commit(lambda: _bump_now(name), robust=True)


def clear_all() -> None:
    """Forget every process-local entry (the shared counters stay)."""
    for locals_ in _registry.values():
        for local in locals_:
            local.clear()


def _bump_now(name: str) -> None:
    key = _KEY_PREFIX + name
    try:
        try:
            cache.incr(key)
        except ValueError:  # never read yet, or lost: any new value is a change
            cache.set(key, _fresh_value(), timeout=None)
    except Exception:
        logger.warning("could not invalidate cached %s; other processes may keep it for a while", name, exc_info=True)


class LocalCache(Generic[V]):
    """`get(key, load)`: the value cached in this process for the current generation, or `load()`.

    `None` is never kept: a miss (an unknown API key, say) asks the database every time, so
    made-up keys cannot fill the cache.
    """

    def __init__(self, name: str, *, max_age: float = 60.0, max_entries: int = 10_000) -> None:
        self.name = name
        self.max_age = max_age
        self.max_entries = max_entries
        self._generation: int | None = None
        self._entries: dict[Hashable, tuple[float, V]] = {}
        self._lock = threading.Lock()
        _registry.setdefault(name, []).append(self)

    @overload
    def get(self, key: Hashable, load: Callable[[], V]) -> V: ...
    @overload
    def get(self, key: Hashable, load: Callable[[], V | None]) -> V | None: ...
    def get(self, key: Hashable, load: Callable[[], V | None]) -> V | None:
        generation = _current(self.name)
        if generation is None:
            return load()
        now = time.monotonic()
        entry = self._entry(key, generation)
        if entry is not None and now - entry[0] < self.max_age:
            return entry[1]
        value = load()
        if value is not None:
            self._store(key, value, generation, now)
        return value

    def peek(self, key: Hashable) -> V | None:
        """The cached value, or None; for callers that fill the cache themselves (`put`)."""
        generation = _current(self.name)
        if generation is None:
            return None
        entry = self._entry(key, generation)
        return entry[1] if entry is not None and time.monotonic() - entry[0] < self.max_age else None

    def put(self, key: Hashable, value: V) -> None:
        """Keep `value`, read from the database under the current generation (call it after commit)."""
        generation = _current(self.name)
        if generation is not None:
            self._entry(key, generation)  # forgets older entries if the generation moved
            self._store(key, value, generation, time.monotonic())

    def _entry(self, key: Hashable, generation: int) -> tuple[float, V] | None:
        with self._lock:
            if generation != self._generation:
                self._entries.clear()
                self._generation = generation
            return self._entries.get(key)

    def _store(self, key: Hashable, value: V, generation: int, now: float) -> None:
        with self._lock:
            if self._generation == generation:
                if len(self._entries) >= self.max_entries:
                    self._entries.clear()
                self._entries[key] = (now, value)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._generation = None


class InvalidatingQuerySet(models.QuerySet[M]):
    """A queryset whose bulk writes bump the generations named in `cache_names`.

    An update of `bookkeeping_fields` only (columns no cached reader uses) does not bump.
    """

    cache_names: tuple[str, ...] = ()
    bookkeeping_fields: frozenset[str] = frozenset()

    def _invalidate(self) -> None:
        for name in self.cache_names:
            bump(name)

    def update(self, **kwargs: object) -> int:
        count = super().update(**kwargs)
        if not (self.bookkeeping_fields and set(kwargs) <= self.bookkeeping_fields):
            self._invalidate()
        return count

    def delete(self) -> tuple[int, dict[str, int]]:
        result = super().delete()
        self._invalidate()
        return result

    def bulk_create(self, *args: Any, **kwargs: Any) -> list[M]:
        created = super().bulk_create(*args, **kwargs)
        self._invalidate()
        return created

    def bulk_update(self, *args: Any, **kwargs: Any) -> int:
        count = super().bulk_update(*args, **kwargs)
        self._invalidate()
        return count


def invalidate_on_change(
    model: type[models.Model], name: str, *, unless_only: frozenset[str] = frozenset(), creations: bool = True
) -> None:
    """Bump `name` whenever an instance of `model` is saved or deleted.

    A save whose `update_fields` are all in `unless_only` (bookkeeping no cached reader
    uses) changes nothing that is cached and does not bump; with `creations=False` neither
    does a new row (for caches that hold only rows already read, which a new row cannot
    make stale).
    """

    def saved(
        sender: object, created: bool = False, update_fields: frozenset[str] | None = None, **kwargs: object
    ) -> None:
        if update_fields is not None and unless_only and set(update_fields) <= unless_only:
            return
        if created and not creations:
            return
        bump(name)

    def deleted(sender: object, **kwargs: object) -> None:
        bump(name)

    post_save.connect(saved, sender=model, weak=False, dispatch_uid=f"localcache-save-{name}-{model.__name__}")
    post_delete.connect(deleted, sender=model, weak=False, dispatch_uid=f"localcache-delete-{name}-{model.__name__}")
