"""Thread embeddings for semantic search, behind a small interface.

The store is treated as a system outside the database even when its backend is a
table here (`threads.models.Embedding`, no foreign keys): messages are indexed by a
task after their transaction commits, and embeddings of deleted threads are removed
after the delete commits by the deletion receipt's cleanup task, retried on failure
and reconciled (`receipts.services`). Neither ever decides
whether the write that caused it succeeds.

The backend is chosen by `settings.VECTOR_STORE_BACKEND` (a dotted class path); the
default is `DatabaseVectorStore`. The embedder is a deterministic hashed
bag-of-words: no model to download, the same text always gives the same vector.
"""

import hashlib
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from uuid import UUID

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from django.utils.module_loading import import_string

from .models import Embedding, Message, PendingIndex, Thread

DIMENSIONS = 256
CHUNK_CHARS = 1000
_TOKEN = re.compile(r"\w+", re.UNICODE)


class VectorStoreError(Exception):
    """The vector store could not do what was asked; the caller may retry."""


def embed(text: str) -> list[float]:
    """A unit vector: each lower-cased word hashed into one of DIMENSIONS buckets."""
    vector = [0.0] * DIMENSIONS
    for token in _TOKEN.findall(text.lower()):
        digest = hashlib.blake2b(token.encode(), digest_size=4).digest()
        vector[int.from_bytes(digest, "big") % DIMENSIONS] += 1.0
    norm = math.sqrt(sum(v * v for v in vector))
    return [round(v / norm, 6) for v in vector] if norm else vector


def cosine(a: list[float], b: list[float]) -> float:
    """Both vectors are unit vectors (or zero), so the dot product is the cosine."""
    return sum(x * y for x, y in zip(a, b))


def chunks_of(text: str, size: int = CHUNK_CHARS) -> list[str]:
    text = text.strip()
    return [text[i : i + size] for i in range(0, len(text), size)] if text else []


@dataclass(frozen=True)
class Chunk:
    account_id: UUID
    project_id: UUID
    thread_id: UUID
    message_id: UUID
    chunk: int
    text: str
    vector: list[float]


@dataclass(frozen=True)
class Match:
    thread_id: UUID
    score: float
    text: str


class VectorStore:
    """What the service needs from a vector store."""

    def upsert(self, chunks: list[Chunk], *, message_ids: list[UUID]) -> None:
        """Replace every chunk of these messages with `chunks`."""
        raise NotImplementedError

    def remove(self, *, thread_ids: Iterable[UUID] = (), project_ids: Iterable[UUID] = ()) -> int:
        """Remove every chunk of these threads and projects; idempotent."""
        raise NotImplementedError

    def query(self, vector: list[float], *, account_ids: list[UUID], project_id: UUID | None, limit: int) -> list[Match]:
        """The best chunk per thread, best threads first, within these accounts."""
        raise NotImplementedError

    def count(self, *, account_ids=None, project_ids=None) -> int | None:
        """How many chunks these accounts or projects (ids, or a subquery of ids)
        hold, for the admin's confirmation pages; None when the store cannot tell."""
        return None


class DatabaseVectorStore(VectorStore):
    """Vectors in the `Embedding` table; brute-force cosine search in Python."""

    def upsert(self, chunks, *, message_ids):
        with transaction.atomic():
            Embedding.objects.filter(message_id__in=message_ids).delete()
            Embedding.objects.bulk_create(
                [
                    Embedding(
                        account_id=c.account_id, project_id=c.project_id, thread_id=c.thread_id,
                        message_id=c.message_id, chunk=c.chunk, text=c.text, vector=c.vector,
                    )
                    for c in chunks
                ],
                batch_size=500,
            )

    def remove(self, *, thread_ids=(), project_ids=()):
        removed = 0
        if thread_ids:
            removed += Embedding.objects.filter(thread_id__in=list(thread_ids)).delete()[0]
        if project_ids:
            removed += Embedding.objects.filter(project_id__in=list(project_ids)).delete()[0]
        return removed

    def count(self, *, account_ids=None, project_ids=None):
        rows = Embedding.objects.all()
        if account_ids is not None:
            rows = rows.filter(account_id__in=account_ids)
        if project_ids is not None:
            rows = rows.filter(project_id__in=project_ids)
        return rows.count()

    def query(self, vector, *, account_ids, project_id, limit):
        rows = Embedding.objects.filter(account_id__in=account_ids)
        if project_id is not None:
            rows = rows.filter(project_id=project_id)
        best: dict[UUID, Match] = {}
        for thread_id, text, candidate in rows.values_list("thread_id", "text", "vector").iterator(chunk_size=2000):
            score = cosine(vector, candidate)
            if score > 0 and (thread_id not in best or score > best[thread_id].score):
                best[thread_id] = Match(thread_id=thread_id, score=score, text=text)
        return sorted(best.values(), key=lambda m: m.score, reverse=True)[:limit]


def get_vector_store() -> VectorStore:
    path = getattr(settings, "VECTOR_STORE_BACKEND", "threads.vectorstore.DatabaseVectorStore")
    return import_string(path)()


# --- Scheduling: called inside the writing transaction, run after commit ---------


# `robust`: a broker that is down is logged by Django and never turns a committed
# write into an error. Embeddings of deleted threads are removed through the
# deletion's receipt (an outbox), and never returned by a search meanwhile (it keeps
# only threads that exist).


def schedule_message_indexing(*, message_ids: list) -> None:
    """Index these messages once the current transaction commits: an outbox row per
    message in this transaction (so nothing depends on the broker), then the task."""
    from config.tasks import send_after_commit

    from .tasks import index_messages

    if message_ids:
        add_to_outbox(message_ids=message_ids)
        send_after_commit(index_messages, message_ids=[str(m) for m in message_ids])


def add_to_outbox(*, message_ids: list) -> None:
    """One outbox row per message, with its thread (the rows are keyed by thread, see
    `PendingIndex`), in one `INSERT ... SELECT` from the messages; a message already
    waiting keeps its row. (`WHERE true`: SQLite needs a WHERE before an upsert's
    `ON CONFLICT` in an `INSERT ... SELECT`.)"""
    messages = Message.objects.filter(id__in=list(message_ids)).order_by().values("id", "thread_id")
    select, params = messages.query.sql_with_params()
    table = connection.ops.quote_name(PendingIndex._meta.db_table)
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (message_id, thread_id, created_at)"
            f" SELECT s.id, s.thread_id, %s FROM ({select}) s WHERE true ON CONFLICT DO NOTHING",
            [now, *params],
        )


# --- The operations the tasks run --------------------------------------------


@transaction.atomic
def index_messages(*, message_ids: list) -> int:
    """Embed these messages and store them; returns the number of chunks stored.

    The threads are locked first, so a concurrent delete of a thread either happens
    before (its messages are gone: nothing is indexed) or waits until this commits
    (its embedding removal, scheduled after the delete, then sees these chunks).
    """
    thread_ids = set(Message.objects.filter(id__in=message_ids).values_list("thread_id", flat=True))
    live = {
        t.id: t
        for t in Thread.objects.select_for_update(no_key=True)
        .filter(id__in=thread_ids)
        .only("id", "account_id", "project_id")
        .order_by("id")
    }
    messages = list(Message.objects.filter(id__in=message_ids, thread_id__in=live).only("id", "thread_id", "content"))
    chunks = [
        Chunk(
            account_id=live[m.thread_id].account_id, project_id=live[m.thread_id].project_id,
            thread_id=m.thread_id, message_id=m.id, chunk=n, text=text, vector=embed(text),
        )
        for m in messages
        for n, text in enumerate(chunks_of(m.text))
    ]
    get_vector_store().upsert(chunks, message_ids=[m.id for m in messages])
    PendingIndex.objects.filter(message_id__in=list(message_ids)).delete()
    return len(chunks)


def reindex_pending_messages(*, min_age_seconds: float | None = None, limit: int = 5000, batch: int = 500) -> int:
    """Index the messages still in the outbox after `min_age_seconds` (default
    `EMBEDDING_REINDEX_MIN_AGE`): their task was lost (broker down, worker crash) or
    failed. Returns how many messages were indexed."""
    if min_age_seconds is None:
        min_age_seconds = settings.EMBEDDING_REINDEX_MIN_AGE
    cutoff = timezone.now() - timedelta(seconds=min_age_seconds)
    ids = list(
        PendingIndex.objects.filter(created_at__lte=cutoff).order_by("created_at").values_list("message_id", flat=True)[:limit]
    )
    done = 0
    for start in range(0, len(ids), batch):
        part = ids[start : start + batch]
        index_messages(message_ids=part)
        done += len(part)
    return done


def remove_embeddings(*, thread_ids: Iterable = (), project_ids: Iterable = ()) -> int:
    return get_vector_store().remove(thread_ids=list(thread_ids), project_ids=list(project_ids))


def search_threads(*, query: str, account_ids: list, project_id=None, limit: int = 10) -> list[Match]:
    """Best-matching threads by the cosine of their best chunk; only threads that
    still exist (embeddings of a deleted thread may outlive it until removed)."""
    vector = embed(query)
    if not any(vector):
        return []
    matches = get_vector_store().query(vector, account_ids=account_ids, project_id=project_id, limit=limit * 2)
    existing = set(Thread.objects.filter(id__in=[m.thread_id for m in matches]).values_list("id", flat=True))
    return [m for m in matches if m.thread_id in existing][:limit]
