"""The exceptions that say Redis (cache, rate limits, Celery's broker) is down, too slow or refusing every command
(a database number it does not have): an outage, answered 503 and logged in one line like the database's, never a 500
with a traceback."""
from __future__ import annotations

from kombu.exceptions import OperationalError as BrokerUnavailable
from limits.errors import StorageError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError as RedisRefused
from redis.exceptions import TimeoutError as RedisTimeoutError

REDIS_UNAVAILABLE = (RedisConnectionError, RedisTimeoutError, RedisRefused, StorageError, BrokerUnavailable)
