"""The Python service's key selection, as its request handlers run it.

A bot with api_key_id uses that api_keys row: its api_key (decrypted) if set,
else the environment variable named by key_env_var, else the AWS Secrets
Manager secret named by secret_name; an expired row is refused. A bot
without api_key_id uses its own legacy api_key. A stored value is a token
when it starts as every Fernet token does ("gAAAAA": version byte 0x80 and
the high bytes of the timestamp) and is then decrypted with
MultiFernet([ENCRYPTION_KEY, *ENCRYPTION_KEY_PREVIOUS]); anything else is
legacy plaintext and used as it is. A token that does not decrypt is an
error, never taken as plaintext.

Rows are objects with the models' attribute names (see models.py); datetimes
are naive UTC, as SQLAlchemy's DateTime returns them.
"""

import os
from datetime import datetime

from cryptography.fernet import Fernet, MultiFernet

TOKEN_PREFIX = "gAAAAA"


class NoKeyConfigured(Exception):
    """The row has no api_key, key_env_var or secret_name."""


class KeyExpired(Exception):
    """The api_keys row is past its expires_at."""


def key_ring():
    """The service's keys: ENCRYPTION_KEY first (it encrypts), then the
    comma-separated ENCRYPTION_KEY_PREVIOUS, which only decrypt."""
    keys = [os.environ["ENCRYPTION_KEY"]]
    keys += [k.strip() for k in os.environ.get("ENCRYPTION_KEY_PREVIOUS", "").split(",") if k.strip()]
    return keys, MultiFernet([Fernet(k) for k in keys])


def is_token(value):
    return value.startswith(TOKEN_PREFIX)


def reveal(value, ring):
    """A stored value as the service uses it: a token decrypted, legacy
    plaintext as it is. Returns (key, "token" or "plaintext")."""
    if is_token(value):
        return ring.decrypt(value.encode()).decode(), "token"
    return value, "plaintext"


def is_expired(api_key, now):
    return api_key.expires_at is not None and api_key.expires_at < now


def key_of(api_key, ring, secrets_client):
    """The key an api_keys row holds or points to, and where it came from:
    "token", "plaintext", "env" or "secret"."""
    if api_key.api_key:
        return reveal(api_key.api_key, ring)
    if api_key.key_env_var:
        return os.environ[api_key.key_env_var], "env"
    if api_key.secret_name:
        value = secrets_client().get_secret_value(SecretId=api_key.secret_name)
        return value["SecretString"], "secret"
    raise NoKeyConfigured("api_keys row %s has no api_key, key_env_var or secret_name" % api_key.id)


def key_for_bot(bot, get_api_key, ring, secrets_client, now=None, enforce_expiry=True):
    """The key a bot's requests use, and where it came from. get_api_key
    loads an api_keys row by id (None when there is none)."""
    if bot.api_key_id:
        api_key = get_api_key(bot.api_key_id)
        if api_key is None:
            raise LookupError("bot %s points at api_keys row %s, which does not exist" % (bot.id, bot.api_key_id))
        if enforce_expiry and is_expired(api_key, now or datetime.utcnow()):
            raise KeyExpired("api_keys row %s expired at %s" % (api_key.id, api_key.expires_at))
        return key_of(api_key, ring, secrets_client)
    if bot.api_key:
        return reveal(bot.api_key, ring)
    raise NoKeyConfigured("bot %s has no api_key_id and no api_key" % bot.id)
