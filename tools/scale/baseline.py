#!/usr/bin/env python3
"""The Python baseline for keyward migrate and rotate (issue 12, "Speed").

What an operator of the Python service would write with sqlite3 and
cryptography: walk the table by id keyset (WHERE id > ? ORDER BY id LIMIT
500), and per batch, in one transaction, rewrite each row with a
compare-and-swap UPDATE ... WHERE id = ? AND api_key = ?.

  migrate  rows whose api_key is not NULL and does not start with "gAAAAA"
           (a Fernet token's version byte and timestamp) get
           Fernet(primary).encrypt(value)
  rotate   every non-NULL api_key gets MultiFernet([primary, old]).rotate;
           a value that is not a token under either key is counted and left

It is a generous baseline: the plaintext test is a prefix check (keyward's
is structural and stricter) and each batch is one executemany. rotate does
not first ask which key a token is under (MultiFernet.rotate re-encrypts
every token, primary ones too), which costs it nothing on gen.py's "old"
mix, where every row needs the new key.

Keys are read from KEYDIR/primary.key and KEYDIR/previous.key (gen.py makes
them; default: the database's directory) and never printed. The database is
put in journal_mode=WAL first, as keyward's SQLite opener does, so both run
under the same journal (--journal asis keeps the file's mode).

  /usr/bin/time -v python3 tools/scale/baseline.py rotate /tmp/scale/copy.db

prints on stdout: mode rows_scanned rows_rewritten rows_skipped seconds rows_per_s
"""

import argparse
import os
import sqlite3
import sys
import time

from cryptography.fernet import Fernet, InvalidToken, MultiFernet


def read_key(path):
    with open(path, "rb") as f:
        return f.read().strip()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("mode", choices=["migrate", "rotate"])
    ap.add_argument("db")
    ap.add_argument("--keys", help="directory of primary.key and previous.key (default: the database's directory)")
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--journal", choices=["wal", "asis"], default="wal")
    ap.add_argument("--table", default="api_keys")
    a = ap.parse_args()
    if not os.path.exists(a.db):
        ap.error(f"{a.db} does not exist")
    keydir = a.keys or os.path.dirname(os.path.abspath(a.db))
    primary = Fernet(read_key(os.path.join(keydir, "primary.key")))
    old = Fernet(read_key(os.path.join(keydir, "previous.key")))
    ring = MultiFernet([primary, old])

    db = sqlite3.connect(a.db)
    if a.journal == "wal":
        db.execute("PRAGMA journal_mode=WAL")
    t = a.table
    first = f"SELECT id, api_key FROM {t} ORDER BY id LIMIT ?"
    after = f"SELECT id, api_key FROM {t} WHERE id > ? ORDER BY id LIMIT ?"
    update = f"UPDATE {t} SET api_key = ? WHERE id = ? AND api_key = ?"

    start = time.monotonic()
    scanned = rewritten = skipped = 0
    last = None
    while True:
        # The first page has no lower bound: ids may be integers or text, and
        # in SQLite every integer sorts below every string.
        if last is None:
            rows = db.execute(first, (a.batch,)).fetchall()
        else:
            rows = db.execute(after, (last, a.batch)).fetchall()
        if not rows:
            break
        changes = []
        for id_, value in rows:
            if value is None:
                skipped += 1
                continue
            if a.mode == "migrate":
                if value.startswith("gAAAAA"):
                    skipped += 1
                    continue
                new = primary.encrypt(value.encode()).decode()
            else:
                try:
                    new = ring.rotate(value.encode()).decode()
                except InvalidToken:
                    skipped += 1
                    continue
            changes.append((new, id_, value))
        db.executemany(update, changes)  # sqlite3 opens the transaction here
        db.commit()
        scanned += len(rows)
        rewritten += len(changes)
        last = rows[-1][0]
    db.close()
    el = time.monotonic() - start
    print(f"{a.mode} {scanned} {rewritten} {skipped} {el:.2f} {scanned / el if el else 0:.0f}")


if __name__ == "__main__":
    sys.exit(main())
