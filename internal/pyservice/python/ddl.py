"""Prints, as JSON, the DDL that SQLAlchemy's create_all emits for models.py
on each dialect: {"sqlite": [stmt, ...], "postgresql": [...], "mysql": [...]}.

Needs SQLAlchemy (not the database drivers: a mock engine only compiles).
"""

import json
import sys

from sqlalchemy import create_mock_engine

import models

out = {}
for dialect in ("sqlite", "postgresql", "mysql", "mariadb"):
    stmts = []

    def record(sql, *multiparams, **params):
        stmts.append(str(sql.compile(dialect=engine.dialect)))

    engine = create_mock_engine(dialect + "://", record)
    models.Base.metadata.create_all(engine, checkfirst=False)
    out[dialect] = stmts
json.dump(out, sys.stdout, indent=1)
