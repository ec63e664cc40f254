#!/usr/bin/env python3
"""Make a large SQLite api_keys table for keyward's scale measurements.

Two schemas:

  --schema python   the Python service's table as SQLAlchemy emits it for
                    SQLite: id VARCHAR(36) holding str(uuid4()), api_key TEXT
                    NULL, key_env_var, secret_name (issue 12)
  --schema keyward  keyward's default table as `keyward init` makes it on
                    SQLite (fernetstore/schema.go): id INTEGER PRIMARY KEY
                    AUTOINCREMENT; the only shape code before issue 12 reads

and three contents (--mix):

  plaintext  every api_key is legacy plaintext          (for `keyward migrate`)
  old        every api_key is a Fernet token under the
             old key                                    (for `keyward rotate`)
  realistic  tokens under the primary and the old key, plaintext, some
             expired rows, and on the python schema rows that point to an
             environment variable or an AWS secret instead of holding a key

Every row gets its own value: its own plaintext and its own Fernet token
(fresh IV, as Python's Fernet.encrypt makes them), never a reused pool, so
sizes and work per row are those of real data.

Keys: KEYDIR/primary.key (ENCRYPTION_KEY) and KEYDIR/previous.key
(ENCRYPTION_KEY_PREVIOUS, the "old" key) are made with Fernet.generate_key()
when missing (mode 0600) and reused when present, so several databases in
one directory share a key ring. They are never printed.

Speed: tokens are made in worker processes (one per CPU), rows go in one
transaction per 50,000 rows, under journal_mode=WAL and synchronous=OFF. The
finished file is checkpointed and put back in journal_mode=DELETE, so it is a
single file that `cp` copies whole.

  python3 tools/scale/gen.py --rows 1000000 --schema python --mix old --out /tmp/scale/uuid-old-1m.db
"""

import argparse
import base64
import datetime
import multiprocessing
import os
import random
import sqlite3
import sys
import time
import uuid

from cryptography.fernet import Fernet

CHUNK = 50_000  # rows per transaction, and per worker task

# The Python service's table, byte for byte as SQLAlchemy 2 emits it for
# SQLite (CreateTable(...).compile(dialect=sqlite)).
PYTHON_DDL = (
    "CREATE TABLE api_keys (\n"
    "\tid VARCHAR(36) NOT NULL, \n"
    "\tname VARCHAR(255) NOT NULL, \n"
    "\tprovider VARCHAR(50) NOT NULL, \n"
    "\tapi_key TEXT, \n"
    "\tkey_env_var VARCHAR(255), \n"
    "\tsecret_name VARCHAR(255), \n"
    "\texpires_at DATETIME, \n"
    "\tcreated_at DATETIME, \n"
    "\tPRIMARY KEY (id)\n"
    ")"
)

# keyward's default table on SQLite, as fernetstore/schema.go creates it for
# `keyward init` with the default options (integer ids, no ref columns).
KEYWARD_DDL = (
    'CREATE TABLE IF NOT EXISTS "api_keys" (\n'
    '\t"id" INTEGER PRIMARY KEY AUTOINCREMENT,\n'
    "\t\"name\" TEXT NOT NULL DEFAULT '',\n"
    "\t\"provider\" TEXT NOT NULL DEFAULT '',\n"
    '\t"api_key" TEXT NOT NULL,\n'
    '\t"expires_at" TIMESTAMP NULL,\n'
    '\t"created_at" TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP)'
)

PROVIDERS = [
    ("anthropic", b"sk-ant-api03-", 95),
    ("openai", b"sk-proj-", 156),
    ("mistral", b"", 32),
    ("groq", b"gsk_", 52),
]

# realistic: share of rows of each kind, in percent. On the keyward schema
# (no reference columns, api_key NOT NULL) the env and awssm shares go to
# tokens under the primary key.
REALISTIC = {"primary": 55, "old": 25, "plaintext": 10, "env": 5, "awssm": 5}
EXPIRED_PERCENT = 2


def read_or_make_key(path):
    if os.path.exists(path):
        with open(path, "rb") as f:
            key = f.read().strip()
        Fernet(key)  # a malformed file fails here, not half-way through
        return key
    key = Fernet.generate_key()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key + b"\n")
    return key


def plaintext(rng, prefix, n):
    # urlsafe base64 of random bytes, cut to length: the alphabet of real
    # provider keys, so a value never looks like a Fernet token.
    body = base64.urlsafe_b64encode(rng.randbytes(n)).rstrip(b"=")[:n]
    return prefix + body


def kinds_for(schema, mix):
    if mix == "plaintext":
        return ["plaintext"], [1]
    if mix == "old":
        return ["old"], [1]
    shares = dict(REALISTIC)
    if schema == "keyward":
        shares["primary"] += shares.pop("env") + shares.pop("awssm")
    return list(shares), list(shares.values())


def make_chunk(task):
    """Rows [start, start+count) as insert tuples; runs in a worker."""
    start, count, schema, mix, seed, primary, old = task
    rng = random.Random(seed)
    fp, fo = Fernet(primary), Fernet(old)
    kinds, weights = kinds_for(schema, mix)
    base = datetime.datetime(2024, 1, 1)
    now = datetime.datetime.utcnow()
    rows = []
    for i in range(start, start + count):
        provider, prefix, n = PROVIDERS[i % len(PROVIDERS)]
        name = f"{provider}-key-{i}"
        kind = kinds[0] if len(kinds) == 1 else rng.choices(kinds, weights)[0]
        value = env = secret = None
        if kind == "plaintext":
            value = plaintext(rng, prefix, n).decode()
        elif kind == "old":
            value = fo.encrypt(plaintext(rng, prefix, n)).decode()
        elif kind == "primary":
            value = fp.encrypt(plaintext(rng, prefix, n)).decode()
        elif kind == "env":
            env = f"{provider.upper()}_API_KEY_{i}"
        else:
            secret = f"chat/{provider}/{i}"
        created = base + datetime.timedelta(microseconds=rng.randrange(365 * 24 * 3600 * 10**6))
        expires = None
        if mix == "realistic" and rng.randrange(100) < EXPIRED_PERCENT:
            expires = now - datetime.timedelta(days=1 + rng.randrange(300))
        if schema == "python":
            # SQLAlchemy's SQLite DATETIME storage format.
            fmt = "%Y-%m-%d %H:%M:%S.%f"
            rows.append((str(uuid.uuid4()), name, provider, value, env, secret,
                         expires.strftime(fmt) if expires else None, created.strftime(fmt)))
        else:
            # keyward's own format (CURRENT_TIMESTAMP's) in its TIMESTAMP columns.
            fmt = "%Y-%m-%d %H:%M:%S"
            rows.append((i + 1, name, provider, value,
                         expires.strftime(fmt) if expires else None, created.strftime(fmt)))
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, required=True)
    ap.add_argument("--schema", choices=["python", "keyward"], default="python")
    ap.add_argument("--mix", choices=["plaintext", "old", "realistic"], required=True)
    ap.add_argument("--out", required=True, help="database file to create (must not exist)")
    ap.add_argument("--keys", help="directory of primary.key and previous.key (default: the --out directory)")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    if a.rows < 0:
        ap.error("--rows must be 0 or more")
    if os.path.exists(a.out):
        ap.error(f"{a.out} exists; remove it or pick another --out")
    keydir = a.keys or os.path.dirname(os.path.abspath(a.out))
    os.makedirs(keydir, exist_ok=True)
    primary = read_or_make_key(os.path.join(keydir, "primary.key"))
    old = read_or_make_key(os.path.join(keydir, "previous.key"))

    db = sqlite3.connect(a.out, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=OFF")
    db.execute("PRAGMA cache_size=-1048576")  # 1 GiB: random UUID keys hit the whole index
    db.execute(PYTHON_DDL if a.schema == "python" else KEYWARD_DDL)
    marks = ",".join("?" * (8 if a.schema == "python" else 6))
    insert = f"INSERT INTO api_keys VALUES ({marks})"

    tasks = [(s, min(CHUNK, a.rows - s), a.schema, a.mix, a.seed * 1_000_003 + s, primary, old)
             for s in range(0, a.rows, CHUNK)]
    t0 = time.monotonic()
    done = 0
    with multiprocessing.Pool(a.workers) as pool:
        for rows in pool.imap(make_chunk, tasks):
            db.execute("BEGIN")
            db.executemany(insert, rows)
            db.execute("COMMIT")
            done += len(rows)
            if done % 1_000_000 == 0 or done == a.rows:
                el = time.monotonic() - t0
                print(f"gen: {done} rows, {el:.0f} s, {done / el:.0f} rows/s", file=sys.stderr)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.execute("PRAGMA journal_mode=DELETE")
    db.close()
    el = time.monotonic() - t0
    print(f"gen: wrote {a.rows} rows ({a.schema} schema, {a.mix}) to {a.out} in {el:.1f} s; "
          f"keys in {keydir}", file=sys.stderr)


if __name__ == "__main__":
    main()
