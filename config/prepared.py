"""Statements prepared once per database connection (PostgreSQL's SQL `PREPARE`).

A delete's statement is a dozen CTEs: PostgreSQL spends longer planning it (~0.7 ms)
than a small delete takes to run. `prepared` turns statements into `EXECUTE`s of
statements this connection has prepared, with the `PREPARE` of any not yet prepared
sent first in the same message: still one round trip, and planned once per
connection where the statement asks for PostgreSQL's generic plan (`generic`). A
statement is sent as it is on its first use on a connection and prepared on its
second: with `DB_CONN_MAX_AGE=0` (a connection per request, one delete each) nothing
is prepared, as preparing a statement used once cost ~0.7 ms more than planning it
(measured on 30 deletes, each on a new connection).

Off with `DB_PREPARED_STATEMENTS=0` — for PgBouncer in transaction pooling mode,
where a session's prepared statements do not follow the client — and on other
databases (then the statements are only joined).

A prepared statement outlives a rolled-back transaction, so a connection keeps the
names it prepared (on the driver's connection object: a new connection starts
empty); after a message that failed, whether its statements are there is asked of
`pg_prepared_statements` before their next use (so a connection whose statements
were deallocated under it fails once, then prepares them again). Off as well with
psycopg's server-side binding (the `server_side_binding` option), whose own prepared
statements are cleared with a `DEALLOCATE ALL`.
"""

import hashlib
import re
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from typing import NamedTuple

from django.conf import settings
from django.db import connection

_PLACEHOLDER = re.compile(r"%\((\w+)\)s")
_STATE = "_prepared_statements"  # on the driver's connection: {name: True, _SEEN, or False when unsure}
_SEEN = "seen"  # sent once as it is: prepared on its second use


class Message(NamedTuple):
    sql: str  # the statements, separated by "\n;\n", for one `cursor.execute(sql, params)`
    skip: int  # result sets of the `PREPARE`s (and `SET`) at its start, before the statements' own
    # (with `generic`, a `SET`'s result set follows the statements')

    def execute(self, cursor, params: dict, *, at: int = 0) -> None:
        """Send the message; the cursor is left at the result set of the `at`-th of the
        statements given to `prepared` (the first by default)."""
        cursor.execute(self.sql, params)
        for _ in range(self.skip + at):
            cursor.nextset()


class Compiled(NamedTuple):
    name: str
    prepare: str
    execute: str


@cache
def compiled(statement: str) -> Compiled:
    """The statement (with `%(name)s` parameters) as a named prepared statement: the
    name follows the text, so a changed statement is prepared under a new name."""
    names = list(dict.fromkeys(_PLACEHOLDER.findall(statement)))
    name = "tk_" + hashlib.blake2b(statement.encode(), digest_size=8).hexdigest()
    body = _PLACEHOLDER.sub(lambda m: f"${names.index(m.group(1)) + 1}", statement)
    arguments = f"({', '.join(f'%({n})s' for n in names)})" if names else ""
    return Compiled(name, f"PREPARE {name} AS {body}", f"EXECUTE {name}{arguments}")


def _joined(statements) -> str:
    return "\n;\n".join(statements)  # (a statement may end with a -- comment)


@contextmanager
def prepared(*statements: str, generic: bool = False) -> Iterator[Message]:
    """The statements as one message of `EXECUTE`s (see the module); send it inside
    the block (`message.execute(cursor, params)`), in a transaction. A parameter's type
    must follow from where it is used: a bare value in a select list needs a `CAST`.

    `generic`: for statements whose best plan does not depend on their parameters'
    values (one thread's, one run's rows, found by index): PostgreSQL plans them once
    per connection (`SET LOCAL plan_cache_mode = force_generic_plan` before them, set
    back after them in the message; the cascade's trigger queries, run at the end of
    each statement, take their generic plans too) — left to choose, it plans a
    statement with a recursive CTE every time. Set back means to the session's value:
    a `SET LOCAL plan_cache_mode` of the caller's transaction before the block does not
    survive it (nothing sets one)."""
    if (connection.vendor != "postgresql" or not settings.DB_PREPARED_STATEMENTS
            or connection.settings_dict["OPTIONS"].get("server_side_binding")):  # psycopg's own: it may DEALLOCATE ALL
        yield Message(_joined(statements), 0)
        return
    connection.ensure_connection()
    known = connection.connection.__dict__.setdefault(_STATE, {})
    parts = [compiled(s) for s in statements]
    unsure = [c.name for c in parts if known.get(c.name) is False]
    if unsure:
        with connection.cursor() as cursor:
            cursor.execute("SELECT name FROM pg_prepared_statements WHERE name = ANY(%s)", [unsure])
            there = {name for (name,) in cursor.fetchall()}
        for name in unsure:
            known[name] = True if name in there else _SEEN
    new = list({c.name: c for c in parts if known.get(c.name) is _SEEN}.values())
    first = [c.prepare for c in new] + (["SET LOCAL plan_cache_mode = force_generic_plan"] if generic else [])
    last = ["SET LOCAL plan_cache_mode = DEFAULT"] if generic else []
    body = [c.execute if c.name in known else statement for c, statement in zip(parts, statements)]
    try:
        yield Message(_joined(first + body + last), len(first))
    except BaseException:  # whether its PREPAREs ran, or whether a statement it executed is there
        for c in parts:
            known[c.name] = False if c.name in known else _SEEN
        raise
    for c in parts:
        known[c.name] = True if c.name in known else _SEEN
