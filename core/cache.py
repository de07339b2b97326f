"""Django's Redis cache backend, keeping its client objects.

Django's `RedisCacheClient.get_client` builds a new `redis.Redis` around the (kept)
connection pool on every cache call; building one fills its table of response callbacks,
which costs about as much CPU as the round trip to Redis. One client per pool is kept
instead: Django keeps a cache object per thread, and a client holds no connection of its
own, so it survives a fork (its pool notices the new process).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.core.cache.backends.redis import RedisCache, RedisCacheClient

if TYPE_CHECKING:
    from redis import ConnectionPool, Redis


class ReusedClientRedisCacheClient(RedisCacheClient):
    if TYPE_CHECKING:
        # Django's own (private, so left out of its stubs); this class builds on them.
        _client: type[Redis]

        def _get_connection_pool(self, write: bool) -> ConnectionPool: ...

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._clients: dict[ConnectionPool, Redis] = {}  # by pool (with replicas, a read picks one at random)

    def get_client(self, key: Any = None, *, write: bool = False) -> Redis:
        pool = self._get_connection_pool(write)
        client = self._clients.get(pool)
        if client is None:
            client = self._clients[pool] = self._client(connection_pool=pool)
        return client


class ReusedClientRedisCache(RedisCache):
    def __init__(self, server: str, params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self._class = ReusedClientRedisCacheClient
