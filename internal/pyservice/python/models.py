"""The Python service's SQLAlchemy models, as the service declares them.

keyward's tests cannot import this file where SQLAlchemy is not installed;
the DDL that SQLAlchemy's create_all emits for these models is kept verbatim
in ../ddl.go, and ddl.py prints it again wherever SQLAlchemy is importable,
so the two can be compared (TestDDLMatchesSQLAlchemy).
"""

import uuid
from datetime import datetime

from sqlalchemy import Column, DateTime, ForeignKey, String, Text
from sqlalchemy.orm import declarative_base

Base = declarative_base()


class APIKey(Base):
    __tablename__ = "api_keys"

    id = Column(String(36), primary_key=True, default=lambda: str(uuid.uuid4()))
    name = Column(String(255), nullable=False)
    provider = Column(String(50), nullable=False)
    # A Fernet token made with Fernet(ENCRYPTION_KEY), or legacy plaintext.
    api_key = Column(Text, nullable=True)
    # Or: the key is in this environment variable ...
    key_env_var = Column(String(255), nullable=True)
    # ... or this secret in AWS Secrets Manager.
    secret_name = Column(String(255), nullable=True)
    expires_at = Column(DateTime, nullable=True)
    created_at = Column(DateTime, default=datetime.utcnow)


class Bot(Base):
    __tablename__ = "bots"

    id = Column(String(36), primary_key=True, default=lambda: str(uuid.uuid4()))
    name = Column(String(255), nullable=False)
    system_prompt = Column(Text)
    model = Column(String(100))
    api_key_id = Column(String(36), ForeignKey("api_keys.id"), nullable=True)
    # Legacy: a key stored on the bot itself, plaintext or a token.
    api_key = Column(Text, nullable=True)
    created_at = Column(DateTime, default=datetime.utcnow)
