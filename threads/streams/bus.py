"""The run event bus: what a run produces travels from the process that executes it
(a Celery worker, possibly on another machine) to the processes that stream it.

Each run has an append-only log of events, and each thread one of all its runs'
events. An event has an id that orders it in its log; a reader follows a log from a
position (its start, or just after a `Last-Event-ID`) and blocks until the next
events arrive: no polling loop, on the database or anywhere else.

- `RedisBus` (`REDIS_URL` set): one Redis stream per log (`XADD`, `XREAD BLOCK`). A
  log is capped (`RUN_STREAM_MAX_EVENTS`) and expires `RUN_STREAM_RETENTION_SECONDS`
  after its last event: that is how long a client can resume or join a finished run.
  Keys carry a prefix from the settings (`CACHE_KEY_PREFIX` and the database number),
  so two deployments (or test runs) sharing a Redis server never see each other's logs.
- `MemoryBus` (the embedded defaults): the same, in this process's memory (a single
  process: `runserver`, one uvicorn worker, in-process tasks).

A cancel flag per run tells the executing process to stop producing events.
"""

import asyncio
import json
import re
import threading
import time
from dataclasses import dataclass
from functools import cache
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder

EVENT_ID = re.compile(r"^\d{1,20}(-\d{1,20})?$")

# At most this many events per read: a shorter batch is everything the log held then.
READ_BATCH = 500


@dataclass(frozen=True)
class Event:
    id: str
    event: str
    data: Any


def _bus_errors() -> tuple:
    try:
        from redis.exceptions import RedisError
    except ImportError:  # no Redis client: the in-process bus
        return (OSError,)
    return (RedisError, OSError)


# What a bus that cannot be reached raises (Redis down, a socket gone).
BUS_ERRORS = _bus_errors()


def reachable(call, *args):
    """`call(*args)` on the bus for a request that has not started streaming: an
    unreachable bus is a 503 with its `detail` (`Unavailable`), not a 500."""
    from config.errors import Unavailable

    try:
        return call(*args)
    except BUS_ERRORS as exc:
        raise Unavailable("The run event stream is unavailable (its bus, Redis, cannot be reached); "
                          "try again shortly.") from exc


def dumps(data) -> str:
    return json.dumps(data, cls=DjangoJSONEncoder, separators=(",", ":"), ensure_ascii=False)


def run_log(run_id) -> str:
    return f"run:{run_id}"


def thread_log(thread_id) -> str:
    return f"thread:{thread_id}"


class Bus:
    def publish(self, logs: list[str], event: str, data) -> None:
        raise NotImplementedError

    def read(self, log: str, after: str | None, timeout: float) -> list[Event]:
        """The events of `log` after id `after` (None: from the start), waiting up to
        `timeout` seconds for the first one; [] if none came."""
        raise NotImplementedError

    async def aread(self, log: str, after: str | None, timeout: float) -> list[Event]:
        raise NotImplementedError

    def last(self, log: str) -> "Event | None":
        """The log's latest event (None: empty or expired)."""
        raise NotImplementedError

    def last_id(self, log: str) -> str | None:
        """The id of the log's latest event (None: empty or expired)."""
        last = self.last(log)
        return last.id if last is not None else None

    def reset(self, log: str, event: str, data) -> None:
        """Drop every event of `log`, which then holds this one alone."""
        raise NotImplementedError

    def cancel(self, run_id) -> None:
        raise NotImplementedError

    def is_cancelled(self, run_id) -> bool:
        raise NotImplementedError


class RedisBus(Bus):
    def __init__(self, url: str, prefix: str):
        self.url = url
        self.prefix = prefix
        self._async_clients: dict[int, Any] = {}
        self._lock = threading.Lock()

    @property
    def retention(self) -> int:
        return settings.RUN_STREAM_RETENTION_SECONDS

    @cache
    def client(self):
        import redis

        # Reads block up to a few seconds: the socket timeout must be longer.
        return redis.Redis.from_url(self.url, socket_timeout=30, socket_connect_timeout=2, health_check_interval=30)

    def aclient(self):
        """One asyncio client per event loop (a client cannot cross loops)."""
        import redis.asyncio

        loop = asyncio.get_running_loop()
        with self._lock:
            client = self._async_clients.get(id(loop))
            if client is None:
                client = redis.asyncio.Redis.from_url(self.url, socket_timeout=30, socket_connect_timeout=2)
                self._async_clients[id(loop)] = client
            return client

    def key(self, log: str) -> str:
        return f"{self.prefix}:{log}"

    def publish(self, logs, event, data):
        fields = {"event": event, "data": dumps(data)}
        pipe = self.client().pipeline(transaction=False)
        for log in logs:
            pipe.xadd(self.key(log), fields, maxlen=settings.RUN_STREAM_MAX_EVENTS, approximate=True)
            pipe.expire(self.key(log), self.retention)
        pipe.execute()

    def reset(self, log, event, data):
        pipe = self.client().pipeline(transaction=True)
        pipe.delete(self.key(log))
        pipe.xadd(self.key(log), {"event": event, "data": dumps(data)})
        pipe.expire(self.key(log), self.retention)
        pipe.execute()

    def _events(self, reply) -> list[Event]:
        events = []
        for _key, entries in reply or []:
            for entry_id, fields in entries:
                events.append(Event(
                    id=entry_id.decode(), event=fields[b"event"].decode(), data=json.loads(fields[b"data"]),
                ))
        return events

    def read(self, log, after, timeout):
        reply = self.client().xread({self.key(log): after or "0-0"}, count=READ_BATCH, block=max(1, int(timeout * 1000)))
        return self._events(reply)

    async def aread(self, log, after, timeout):
        reply = await self.aclient().xread(
            {self.key(log): after or "0-0"}, count=READ_BATCH, block=max(1, int(timeout * 1000))
        )
        return self._events(reply)

    def last(self, log):
        entries = self.client().xrevrange(self.key(log), count=1)
        return self._events([(log, entries)])[0] if entries else None

    def cancel(self, run_id):
        self.client().set(self.key(f"cancel:{run_id}"), 1, ex=self.retention)

    def is_cancelled(self, run_id):
        return bool(self.client().exists(self.key(f"cancel:{run_id}")))


class MemoryBus(Bus):
    """In-process logs: a condition variable wakes blocked readers (threads); an
    asyncio event per waiting coroutine wakes async readers on their own loop."""

    def __init__(self):
        self._cond = threading.Condition()
        self._logs: dict[str, list[Event]] = {}
        self._touched: dict[str, float] = {}
        self._waiters: dict[str, set] = {}
        self._cancelled: dict[str, float] = {}
        self._seq = 0

    def publish(self, logs, event, data):
        data = json.loads(dumps(data))  # the same JSON round trip as through Redis
        with self._cond:
            self._expire()
            for log in logs:
                self._seq += 1
                entries = self._logs.setdefault(log, [])
                entries.append(Event(id=f"{self._seq}-0", event=event, data=data))
                del entries[: max(0, len(entries) - settings.RUN_STREAM_MAX_EVENTS)]
                self._touched[log] = time.monotonic()
                for loop, waiter in self._waiters.pop(log, set()):
                    loop.call_soon_threadsafe(waiter.set)
            self._cond.notify_all()

    def reset(self, log, event, data):
        data = json.loads(dumps(data))
        with self._cond:
            self._seq += 1
            self._logs[log] = [Event(id=f"{self._seq}-0", event=event, data=data)]
            self._touched[log] = time.monotonic()
            for loop, waiter in self._waiters.pop(log, set()):
                loop.call_soon_threadsafe(waiter.set)
            self._cond.notify_all()

    def _expire(self):
        horizon = time.monotonic() - settings.RUN_STREAM_RETENTION_SECONDS
        for log in [log for log, at in self._touched.items() if at < horizon]:
            self._logs.pop(log, None)
            self._touched.pop(log, None)
        for run_id in [r for r, at in self._cancelled.items() if at < horizon]:
            del self._cancelled[run_id]

    def _after(self, log, after) -> list[Event]:
        entries = self._logs.get(log, [])
        if after is None:
            return list(entries[:READ_BATCH])
        seq = int(after.split("-")[0])
        return [e for e in entries if int(e.id.split("-")[0]) > seq][:READ_BATCH]

    def read(self, log, after, timeout):
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                events = self._after(log, after)
                remaining = deadline - time.monotonic()
                if events or remaining <= 0:
                    return events
                self._cond.wait(remaining)

    async def aread(self, log, after, timeout):
        loop = asyncio.get_running_loop()
        waiter = asyncio.Event()
        with self._cond:
            events = self._after(log, after)
            if events:
                return events
            self._waiters.setdefault(log, set()).add((loop, waiter))
        try:
            await asyncio.wait_for(waiter.wait(), timeout)
        except TimeoutError:
            pass
        finally:
            with self._cond:
                self._waiters.get(log, set()).discard((loop, waiter))
        with self._cond:
            return self._after(log, after)

    def last(self, log):
        with self._cond:
            entries = self._logs.get(log)
            return entries[-1] if entries else None

    def cancel(self, run_id):
        with self._cond:
            self._cancelled[str(run_id)] = time.monotonic()

    def is_cancelled(self, run_id):
        with self._cond:
            return str(run_id) in self._cancelled


def redis_prefix() -> str:
    """Derived from the settings: the cache key prefix and the Redis database number."""
    db = urlsplit(settings.REDIS_URL).path.strip("/") or "0"
    return f"{settings.CACHES['default'].get('KEY_PREFIX') or 'tk'}:{db}:stream"


_memory_bus = MemoryBus()


def get_bus() -> Bus:
    url = settings.REDIS_URL
    if not url:
        return _memory_bus
    return _redis_bus(url, redis_prefix())


@cache
def _redis_bus(url: str, prefix: str) -> RedisBus:
    return RedisBus(url, prefix)
