"""Serving a log of the bus over HTTP: Server-Sent Events (streams, joins), or one
JSON body at the end (`wait`, `join`).

A `Follower` holds where a reader is in a log and what it wants; the generators
below drive it, blocking on the bus (`read` in a WSGI worker thread, `aread` on an
ASGI server's event loop, so a slow client costs no thread there). When nothing
arrives for `RUN_STREAM_HEARTBEAT_SECONDS`, a stream sends an SSE comment (which also
reveals a client that went away) and asks the database, once, whether its run still
exists and is active: a run whose executor was lost ends its stream this way.

A bus that cannot be reached (Redis down) never cuts a response short: a stream
sends an `error` event (`StreamUnavailable`) and ends — the run goes on — and a
`wait` or `join` follows the run's status in the database instead, then answers its
state from there.
"""

import asyncio
import json
import logging
import threading
import time
from collections.abc import Callable
from functools import partial

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections
from django.utils.dateparse import parse_datetime

from ..models import ACTIVE_RUN_STATUSES, ApprovalStatus, Run, RunStatus, Thread
from .bus import BUS_ERRORS, READ_BATCH, Event, dumps, get_bus
from .events import INTERNAL_EVENTS, wanted

logger = logging.getLogger(__name__)
HEARTBEAT = b": heartbeat\n\n"


def frame(event: Event) -> bytes:
    return f"id: {event.id}\nevent: {event.event}\ndata: {dumps(event.data)}\n\n".encode()


def run_status(run_id) -> str | None:
    return Run.objects.filter(pk=run_id).values_list("status", flat=True).first()


class Follower:
    """A reader of one log.

    after: the last event id already seen (None: from the log's start);
    modes: the stream modes to pass on (None: everything); run_id: the run whose
    `end` closes the stream (None: a thread's log, followed until the client leaves
    or, with `thread_id`, until the thread is deleted: an `end` with status `deleted`);
    paused: the run's log already ends with `paused` (a join from now on);
    resumed: the stream of a paused run's resume, read from the log's end when the
    resume was decided: what comes before the `resumed` event (the pause's own events,
    should they reach the log late) is dropped, and the stream starts, as every run
    stream does, with a `metadata` event, in place of the `resumed` one.
    """

    def __init__(self, *, log: str, after: str | None, modes=None, run_id=None, events: set | None = None,
                 paused: bool = False, thread_id=None, thread_created_at=None, resumed: bool = False):
        self.log = log
        self.thread_id = thread_id  # a thread's log: it ends when the thread is deleted
        self.thread_created_at = thread_created_at  # which thread of that id (one deleted may be created again)
        self.after = after
        self.modes = set(modes) if modes else None
        self.events = events
        self.run_id = run_id
        self.done = False
        self.values = None
        self.error = None
        self.status = None
        self.paused = paused  # the run waits on an interrupt (its log's last word is `paused`)
        self.gone_once = False  # the run was found gone once (see `check`)
        self.resumed = resumed
        self.bus = get_bus()

    def passes(self, event: Event) -> bool:
        if event.event in INTERNAL_EVENTS:
            return False
        if self.events is not None:
            return event.event in self.events
        return self.modes is None or wanted(event.event, self.modes)

    def take(self, events: list[Event]) -> list[Event]:
        out = []
        for event in events:
            self.after = event.id
            if self.resumed:  # before the resume: nothing of it, not even its `paused`
                if event.event == "resumed":
                    self.resumed = False
                    metadata = Event(id=event.id, event="metadata",
                                     data={"run_id": str(self.run_id), **(event.data or {})})
                    if self.passes(metadata):
                        out.append(metadata)
                continue
            if event.event == "values":
                self.values = event.data
            elif event.event == "error":
                self.error = event.data
            if self.passes(event):
                out.append(event)
            if event.event == "end" and self.run_id is not None:
                self.status = (event.data or {}).get("status")
                self.done = True
                break
            if event.event == "reset" and not self.same_thread((event.data or {}).get("created_at")):
                out.append(self.thread_deleted())  # its id is another thread's now: nothing of that one
                break
            if event.event in INTERNAL_EVENTS:
                self.paused = event.event == "paused"
        if self.paused and not self.done and self.run_id is not None and len(events) < READ_BATCH:
            # The log's last word is that the run waits on an interrupt: this wait ends
            # (LangGraph's paused run); a join after `command: {resume}` reads past it.
            self.done = True
            self.status = "interrupted"
            end = Event(id=self.after, event="end", data={"run_id": str(self.run_id), "status": self.status})
            if self.passes(end):
                out.append(end)
        return out

    def same_thread(self, created_at: str | None) -> bool:
        """Whether a `reset` of the log (its thread's creation time) is this follower's thread."""
        return self.thread_created_at is None or parse_datetime(created_at or "") == self.thread_created_at

    def thread_deleted(self) -> Event:
        """The end of a thread's stream whose thread was deleted."""
        self.done = True
        self.status = "deleted"
        return Event(id=self.after or "0-0", event="end", data={"thread_id": str(self.thread_id), "status": "deleted"})

    def check(self) -> list[Event]:
        """The run's status in the database (at the start and when idle): a run that
        ended or went without a trace of its `end` in the log gets one now."""
        if self.run_id is None:
            if self.thread_id is None or Thread.objects.filter(
                    pk=self.thread_id, **({"created_at": self.thread_created_at} if self.thread_created_at else {})
            ).exists():
                return []
            return [self.thread_deleted()]
        if self.paused:
            return self.take([])  # still the log's last word: the run waits
        status = run_status(self.run_id)
        if status in ACTIVE_RUN_STATUSES:
            return []
        last = self.bus.last_id(self.log)
        if last is not None and last != self.after:
            return []  # the log has more to give (its end among it)
        if status is None and not self.gone_once:
            # Gone: a stateless run's thread is deleted just before its `end` is
            # published, so look once more before calling it deleted.
            self.gone_once = True
            return []
        self.done = True
        self.status = status or "deleted"
        end = Event(id=self.after or "0-0", event="end", data={"run_id": str(self.run_id), "status": self.status})
        return [end] if self.passes(end) else []


def closing(func, *args):
    """Call `func` in an event loop's worker thread, which keeps no database connection."""
    try:
        return func(*args)
    finally:
        close_old_connections()


in_thread = sync_to_async(closing, thread_sensitive=False)


def on_close(callback: Callable[[], None] | None) -> None:
    """Run a disconnect callback (a cancel) in its own thread with its own connection."""
    if callback is None:
        return

    def call():
        try:
            callback()
        except Exception as exc:
            logger.info("On-disconnect action failed: %s", exc)
        finally:
            close_old_connections()

    threading.Thread(target=call, daemon=True).start()


def unavailable(follower: Follower, exc: Exception) -> bytes:
    """The last frame of a stream whose bus cannot be reached: the stream ends (not
    the run, so no on-disconnect action either)."""
    logger.warning("Run stream %s ended: the event bus is unreachable (%s)", follower.log, exc)
    follower.done = True
    return frame(Event(id=follower.after or "0-0", event="error", data={
        "error": "StreamUnavailable",
        "message": "The event stream is unavailable (its bus cannot be reached); the run goes on. "
                   "Join it again later, or read the thread's state.",
    }))


def sse(follower: Follower, *, disconnected: Callable | None = None):
    """SSE frames for a WSGI server (blocking reads)."""
    heartbeat = settings.RUN_STREAM_HEARTBEAT_SECONDS
    try:
        for event in follower.check():
            yield frame(event)
        while not follower.done:
            events = follower.bus.read(follower.log, follower.after, heartbeat)
            if not events:
                yield HEARTBEAT
                events = follower.check()
                for event in events:
                    yield frame(event)
                continue
            for event in follower.take(events):
                yield frame(event)
    except BUS_ERRORS as exc:
        yield unavailable(follower, exc)
    finally:
        if not follower.done:
            on_close(disconnected)


async def asse(follower: Follower, *, disconnected: Callable | None = None):
    """SSE frames for an ASGI server (the event loop waits, no thread is held)."""
    heartbeat = settings.RUN_STREAM_HEARTBEAT_SECONDS
    check = partial(in_thread, follower.check)
    try:
        for event in await check():
            yield frame(event)
        while not follower.done:
            events = await follower.bus.aread(follower.log, follower.after, heartbeat)
            if not events:
                yield HEARTBEAT
                for event in await check():
                    yield frame(event)
                continue
            for event in follower.take(events):
                yield frame(event)
    except BUS_ERRORS as exc:
        yield unavailable(follower, exc)
    finally:
        if not follower.done:
            on_close(disconnected)


def run_outcome(follower: Follower) -> bool:
    """Without the bus: whether the run has ended (or paused on an interrupt), from the
    database; if so the follower is done with its status (and error)."""
    row = Run.objects.filter(pk=follower.run_id).values_list("status", "error").first()
    status, error = row if row is not None else (None, None)
    paused = status == RunStatus.RUNNING and Run.objects.filter(
        pk=follower.run_id, approvals__status=ApprovalStatus.PENDING).exists()
    if status in ACTIVE_RUN_STATUSES and not paused:
        return False
    follower.done = True
    follower.status = "interrupted" if paused else (status or "deleted")
    if status == RunStatus.ERROR:
        follower.error = {"error": "RunError", "message": error or ""}
    return True


def bus_lost(follower: Follower, exc: Exception) -> None:
    logger.warning("Run log %s unreachable (%s): following the run in the database", follower.log, exc)


def final_body(follower: Follower, fallback: Callable[[], dict]) -> bytes:
    if follower.error is not None and follower.status == "error":
        return json.dumps({"__error__": follower.error}).encode()
    if follower.status == "deleted":  # the 200 is sent already: the body says it
        return json.dumps({"__error__": {"error": "RunDeleted",
                                         "message": "The run, or its thread, was deleted before it ended."}}).encode()
    values = follower.values if follower.values is not None else fallback()
    return dumps(values).encode()


def body_at_end(follower: Follower, fallback: Callable[[], dict], *, disconnected: Callable | None = None):
    """A JSON body sent when the run ends (`wait`, `join`): whitespace, which JSON
    allows before a value, keeps the connection alive (and reveals a client that
    left) meanwhile. The body is the run's last `values` (else `fallback()`)."""
    heartbeat = settings.RUN_STREAM_HEARTBEAT_SECONDS
    try:
        try:
            follower.check()
            while not follower.done:
                events = follower.bus.read(follower.log, follower.after, heartbeat)
                if events:
                    follower.take(events)
                else:
                    yield b"\n"
                    follower.check()
        except BUS_ERRORS as exc:
            bus_lost(follower, exc)
            while not run_outcome(follower):
                yield b"\n"
                time.sleep(heartbeat)
        yield final_body(follower, fallback)
    finally:
        if not follower.done:
            on_close(disconnected)


async def abody_at_end(follower: Follower, fallback: Callable[[], dict], *, disconnected: Callable | None = None):
    heartbeat = settings.RUN_STREAM_HEARTBEAT_SECONDS
    check = partial(in_thread, follower.check)
    try:
        try:
            await check()
            while not follower.done:
                events = await follower.bus.aread(follower.log, follower.after, heartbeat)
                if events:
                    follower.take(events)
                else:
                    yield b"\n"
                    await check()
        except BUS_ERRORS as exc:
            bus_lost(follower, exc)
            while not await in_thread(run_outcome, follower):
                yield b"\n"
                await asyncio.sleep(heartbeat)
        yield await in_thread(final_body, follower, fallback)
    finally:
        if not follower.done:
            on_close(disconnected)

