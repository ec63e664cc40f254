"""keyward's stand-in for the Python service (FastAPI + SQLAlchemy +
cryptography): it fills the service's database the way the service does,
and reads every row back the way the service does (service.py).

    python3 fixture.py create   SQLite: runs the DDL on stdin ({"db", "ddl"}) with sqlite3
    python3 fixture.py fill     makes the rows ({"db"}: written on SQLite) and prints them
    python3 fixture.py read     reads every row ({"db"} on SQLite, else the rows themselves)
                                and prints, per row, the key the service uses or why not

Values travel on stdin and stdout only, never in arguments or on stderr;
errors are reported by type and a message that names ids, never values.
Everything here is what the service would do with SQLAlchemy: pysqlite
writes DATETIME as SQLAlchemy's SQLite type binds it and reads it back with
datetime.fromisoformat, as SQLAlchemy 2.0 does.
"""

import json
import os
import secrets
import sqlite3
import sys
import urllib.parse
import uuid
import warnings
from datetime import datetime, timedelta
from types import SimpleNamespace

# The service calls datetime.utcnow(), which Python 3.12 deprecates.
warnings.filterwarnings("ignore", category=DeprecationWarning)

from cryptography.fernet import Fernet, MultiFernet  # noqa: E402

import service  # noqa: E402

API_KEYS = ("id", "name", "provider", "api_key", "key_env_var", "secret_name", "expires_at", "created_at")
BOTS = ("id", "name", "system_prompt", "model", "api_key_id", "api_key", "created_at")
DATETIMES = ("expires_at", "created_at")


def bind_datetime(value):
    """SQLAlchemy's SQLite DATETIME bind processor (storage format
    "%(year)04d-%(month)02d-%(day)02d %(hour)02d:%(minute)02d:%(second)02d.%(microsecond)06d");
    the same text carries naive UTC datetimes to the Go side for PostgreSQL
    and MariaDB, where SQLAlchemy binds the datetime itself."""
    if value is None:
        return None
    return "%04d-%02d-%02d %02d:%02d:%02d.%06d" % (
        value.year, value.month, value.day, value.hour, value.minute, value.second, value.microsecond)


def insert_sql(table, columns):
    # The statement SQLAlchemy's ORM emits for a flush of these models.
    return "INSERT INTO %s (%s) VALUES (%s)" % (table, ", ".join(columns), ", ".join("?" * len(columns)))


def sqlite_connect(path, create=False):
    # mode=rw: reading a database must never create one.
    mode = "rwc" if create else "rw"
    return sqlite3.connect("file:%s?mode=%s" % (urllib.parse.quote(path), mode), uri=True)


def secrets_client_factory():
    client = []

    def get():
        if not client:
            import boto3  # only rows that name a secret need it
            client.append(boto3.client("secretsmanager"))
        return client[0]
    return get


def create(inp):
    con = sqlite_connect(inp["db"], create=True)
    for stmt in inp["ddl"]:
        con.execute(stmt)
    con.commit()
    con.close()
    return {}


def fill(inp):
    def canary(prefix="sk-ant-pyfixture-"):
        return prefix + secrets.token_hex(16)

    current = Fernet.generate_key().decode()
    previous = Fernet.generate_key().decode()
    fernet = Fernet(current)
    # The ring the service had before ENCRYPTION_KEY was rotated: its rows
    # are tokens under what is now ENCRYPTION_KEY_PREVIOUS.
    before_rotation = MultiFernet([Fernet(previous)])
    tag = secrets.token_hex(4)
    env_var = "PYFIXTURE_ANTHROPIC_API_KEY_" + tag.upper()
    secret_name = "pyfixture/anthropic-" + tag
    env = {}
    rows = []
    now = datetime.utcnow()

    def api_key(kind, name, provider, key, **columns):
        values = dict(id=str(uuid.uuid4()), name=name, provider=provider, api_key=None, key_env_var=None,
                      secret_name=None, expires_at=None, created_at=datetime.utcnow())
        values.update(columns)
        rows.append(dict(table="api_keys", kind=kind, key=key, values=values,
                         expired=values["expires_at"] is not None and values["expires_at"] < now))
        return rows[-1]

    def bot(kind, name, key, target=None, **columns):
        values = dict(id=str(uuid.uuid4()), name=name, system_prompt="You are a helpful assistant.",
                      model="claude-3-5-sonnet-20241022", api_key_id=target["values"]["id"] if target else None,
                      api_key=None, created_at=datetime.utcnow())
        values.update(columns)
        rows.append(dict(table="bots", kind=kind, key=key, values=values,
                         expired=target["expired"] if target else False))

    k = canary()
    encrypted = api_key("encrypted", "Claude production", "anthropic", k,
                        api_key=fernet.encrypt(k.encode()).decode(), expires_at=now + timedelta(days=365))
    k = canary()
    api_key("previous-key", "Claude staging", "anthropic", k, api_key=before_rotation.encrypt(k.encode()).decode())
    k = canary("sk-proj-pyfixture-")
    api_key("plaintext", "OpenAI (legacy)", "openai", k, api_key=k)
    k = canary()
    env[env_var] = k
    api_key("env", "Claude from the environment", "anthropic", k, key_env_var=env_var)
    k = canary()
    import boto3
    boto3.client("secretsmanager").create_secret(Name=secret_name, SecretString=k)
    in_secret = api_key("secret", "Claude from Secrets Manager", "anthropic", k, secret_name=secret_name)
    k = canary()
    api_key("expired", "Claude (expired)", "anthropic", k,
            api_key=fernet.encrypt(k.encode()).decode(), expires_at=now - timedelta(days=30))
    api_key("empty", "Unconfigured", "anthropic", None)

    bot("linked", "Support bot", encrypted["key"], target=encrypted)
    bot("linked", "Research bot", in_secret["key"], target=in_secret)
    k = canary()
    bot("plaintext", "Legacy bot", k, api_key=k)
    k = canary()
    bot("encrypted", "Legacy bot (encrypted)", k, api_key=fernet.encrypt(k.encode()).decode())

    if inp.get("db"):
        con = sqlite_connect(inp["db"])
        for table, columns in (("api_keys", API_KEYS), ("bots", BOTS)):
            batch = [tuple(bind_datetime(r["values"][c]) if c in DATETIMES else r["values"][c] for c in columns)
                     for r in rows if r["table"] == table]
            con.executemany(insert_sql(table, columns), batch)
        con.commit()
        con.close()
    for r in rows:
        for c in DATETIMES:
            if c in r["values"]:
                r["values"][c] = bind_datetime(r["values"][c])
    return dict(encryption_key=current, previous_keys=[previous], env=env, rows=rows)


def load(columns, raw):
    """A row as the ORM loads it: datetimes through SQLAlchemy 2.0's
    str_to_datetime (datetime.fromisoformat), which raises on anything it
    cannot parse, and ids that must be text (str(uuid4()))."""
    row = SimpleNamespace(**dict(zip(columns, raw)))
    if not isinstance(row.id, str):
        raise TypeError("id is stored as %s, not text" % type(row.id).__name__)
    for c in DATETIMES:
        if getattr(row, c, None) is not None:
            setattr(row, c, datetime.fromisoformat(getattr(row, c)))
    return row


def describe(err):
    if type(err).__name__ == "InvalidToken":
        return "InvalidToken: no key of ENCRYPTION_KEY, ENCRYPTION_KEY_PREVIOUS opens the token"
    if isinstance(err, KeyError):
        return "KeyError: environment variable %s is not set" % err.args[0]
    if isinstance(err, UnicodeDecodeError):
        return "UnicodeDecodeError: the decrypted key is not UTF-8"
    return ("%s: %s" % (type(err).__name__, err))[:400]


def read(inp):
    keys, ring = service.key_ring()
    secrets_client = secrets_client_factory()
    now = datetime.utcnow()

    if inp.get("db"):
        con = sqlite_connect(inp["db"])
        select = "SELECT %s FROM api_keys" % ", ".join(API_KEYS)
        api_keys = con.execute(select).fetchall()
        bots = con.execute("SELECT %s FROM bots" % ", ".join(BOTS)).fetchall()

        def lookup(bot):
            # session.get(APIKey, bot.api_key_id): a query on the primary key.
            raw = con.execute(select + " WHERE api_keys.id = ?", (bot.api_key_id,)).fetchone()
            return None if raw is None else load(API_KEYS, raw)
    else:
        api_keys = [[r[c] for c in API_KEYS] for r in inp["api_keys"]]
        bots = [[r[c] for c in BOTS] for r in inp["bots"]]
        linked = inp.get("linked") or {}

        def lookup(bot):
            raw = linked.get(bot.id)
            return None if raw is None else load(API_KEYS, [raw[c] for c in API_KEYS])

    def key_index(token):
        for i, k in enumerate(keys):
            try:
                Fernet(k).decrypt(token.encode())
                return i
            except Exception:
                pass
        return -1

    def result(raw, fn):
        out = dict(id=str(raw[0]), key=None, source="", key_index=-1, expired=False, linked="", error="")
        try:
            fn(out)
        except Exception as err:
            out["key"] = None
            out["error"] = describe(err)
        return out

    def read_api_key(raw):
        def fn(out):
            row = load(API_KEYS, raw)
            out["expired"] = service.is_expired(row, now)
            out["key"], out["source"] = service.key_of(row, ring, secrets_client)
            if out["source"] == "token":
                out["key_index"] = key_index(row.api_key)
        return result(raw, fn)

    def read_bot(raw):
        def fn(out):
            bot = load(BOTS, raw)
            target = []

            def get_api_key(api_key_id):
                row = lookup(bot)
                target.append(row)
                return row
            # Expiry is reported, not enforced, so that the key behind an
            # expired row is still checked.
            out["key"], out["source"] = service.key_for_bot(bot, get_api_key, ring, secrets_client,
                                                            enforce_expiry=False)
            if target:
                out["linked"] = target[0].id
                out["expired"] = service.is_expired(target[0], now)
                if out["source"] == "token":
                    out["key_index"] = key_index(target[0].api_key)
            elif out["source"] == "token":
                out["key_index"] = key_index(bot.api_key)
        return result(raw, fn)

    return dict(api_keys=[read_api_key(r) for r in api_keys], bots=[read_bot(r) for r in bots])


def main():
    command = sys.argv[1]
    inp = json.load(sys.stdin)
    out = {"create": create, "fill": fill, "read": read}[command](inp)
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
