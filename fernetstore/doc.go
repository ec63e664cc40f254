// Package fernetstore keeps API keys in a table of any database/sql database
// (SQLite, PostgreSQL, MySQL/MariaDB), encrypted with Fernet under a key ring
// from the environment, byte-compatible with Python's cryptography Fernet:
// rows written by a Python service with Fernet(ENCRYPTION_KEY) resolve here,
// and rows written here decrypt in Python.
//
// A Store resolves a row id to its value (secrets.KeyResolver), writes rows
// (Put, Insert, Update, Delete), streams metadata without decrypting
// (Entries, List), and
// rewrites rows in place: Migrate encrypts legacy plaintext, Rotate moves
// tokens made under an old key to the primary. Both are batched, resumable
// and use compare-and-swap updates, so they are safe while the service runs,
// from two processes at once, and after a kill at any moment.
//
// Legacy plaintext is recognised by structure (Classify), never by a failed
// decryption: a token whose HMAC fails under every key is ErrUndecryptable,
// never returned as plaintext. Plaintext rows resolve only in migration mode
// (Options.AllowPlaintext), and each such read is reported to the audit
// decorator.
//
// # Classification
//
// In migration mode a value is treated as plaintext only when it cannot be a
// damaged or wrapped token; anything ambiguous is undecryptable, and Migrate
// and Rotate leave it untouched and list its row id (Report.UndecryptableIDs)
// for an operator to look at. A token starts with "gAAAAA" and B, C or D: the
// version byte and a timestamp from 2004 to 2106. A value is ambiguous when
// its base64 characters start within one edit (substitution, deletion,
// insertion) of those seven characters, are a truncation of them, hold them
// anywhere (quotes, b'...', JSON, a BOM, "Bearer "), or are as long as a
// token with one of its first five bytes damaged. Provider keys ("sk-ant-",
// "sk-proj-", "AIza", "gsk_", random base64url) are none of these, so they
// migrate. Classify's documentation gives the rule and why each part is
// needed; TestTamperSweep checks every one-character edit, truncation and
// common wrapper of real tokens, TestPlaintextKeyShapes generated keys of
// every provider's shape (figures in BENCHMARKS.md).
//
// Tokens are read as Python's Fernet reads them, so the two agree on a
// shared table: Python's url-safe base64 decoder skips every byte outside
// the alphabet, so Python decrypts a token behind a quote, a NUL, \v, \f, a
// BOM or a space, or with one inside it, and such a value decrypts here too,
// in strict mode as well, to the token's own value (the skipped bytes carry
// nothing; the HMAC covers the whole token). Both alphabets and a missing
// padding are accepted, and a '=' that closes a quad is read both as the end
// of the data, as Python 3.11 reads it, and as a skipped byte, which also
// reads a token with a stray '=' inside. Whatever Python 3.11 decrypts
// decrypts here; a few values only decrypt here (an unpadded token, a '='
// inside one), never to another value.
//
// Encrypted is a sql.Scanner/driver.Valuer column type bound to a key ring,
// for a host's own models.
//
// # Tables
//
// The store works on an existing table as it is, read on first use: the
// id column's type says whether ids are integers the database assigns or
// text (UUIDs) the application assigns (Insert then makes a UUID), and the
// optional columns the table lacks are done without. On SQLite, where a
// column's type is only a hint, the database assigns ids only to the
// table's INTEGER PRIMARY KEY (any other integer id, such as a BIGINT
// PRIMARY KEY, needs Row.ID), and an id column with no declared type is
// read by the ids it holds: integers or text, or id_type= for an empty
// table; a mix of both is refused. A missing table or
// column, or a column type the store cannot use, is an ErrInvalidRef that
// names it. A Python service's SQLAlchemy table (id VARCHAR(36), api_key
// TEXT NULL, key_env_var, secret_name) is read with
//
//	fernet://?ref_columns=key_env_var:env,secret_name:awssm
//
// where a row whose api_key is NULL or empty resolves through the first
// ref column that names a key, as that service picks it: the row answers
// env:NAME (or awssm:NAME), which the Stack resolves through its own
// layers, so the followed ref meets the same allow list, cache and audit,
// and the row's expires_at applies to it. Such rows are listed as
// StateReference with their target; Migrate and Rotate count them and
// leave them alone. A row with no key in any column is StateEmpty and
// resolves as ErrNotFound saying so. A ref column that holds what looks
// like a key pasted in, not a variable or secret name, is never quoted:
// the row is StateBadReference, and resolves as ErrInvalidRef naming only
// the column.
//
// # Databases
//
// The package links no SQL driver: as with database/sql, the host imports
// the one it uses, and a binary carries only that one. New takes any
// *sql.DB (its dialect is told from the driver's package). For OpenDB and
// DATABASE_URL, import the package of the database, which registers its DSN
// schemes:
//
//	import _ "github.com/keyward/secrets/fernetstore/sqlite"   // sqlite:, sqlite3:, file: (modernc.org/sqlite)
//	import _ "github.com/keyward/secrets/fernetstore/postgres" // postgres://, postgresql:// (pgx)
//	import _ "github.com/keyward/secrets/fernetstore/mysql"    // mysql://, mariadb:// (go-sql-driver/mysql)
//
// (github.com/keyward/secrets/all imports the three.) A DSN whose package
// was not imported is ErrUnknownScheme, naming the package: from OpenDB, and
// from the fernet:// opener when it is opened.
//
// # Keys
//
// ENCRYPTION_KEY is the primary key: the 44-character url-safe base64 of 32
// bytes that Python's Fernet.generate_key() prints (GenerateKey makes one).
// ENCRYPTION_KEY_PREVIOUS holds older keys, comma-separated, which decrypt
// only. Decryption tries the primary first, so extra keys cost nothing for
// current rows.
//
// # URLs
//
//	fernet://?table=api_keys&plaintext=allow
//
// Parameters: table (default api_keys); plaintext=allow|deny (migration
// mode; default deny); dialect=sqlite|postgres|mysql (default: from the
// driver); id_type=integer|text (default: from the table; for
// CreateSchema, text makes VARCHAR(36) ids); ref_columns=COLUMN:SCHEME,...
// (see Tables); id_column, name_column, provider_column, value_column,
// expires_column, created_column (the last four may be "-" for a column
// the table lacks, which a default name does not need); poll=DURATION (how
// often Watch polls the change log on MariaDB and SQLite, 10ms to 1h;
// default 1s). Unknown parameters are rejected (ParseURL reads a URL the
// same way). The database comes from DATABASE_URL (default
// sqlite:keyward.db; see OpenDB for the forms) and the keys from
// ENCRYPTION_KEY and ENCRYPTION_KEY_PREVIOUS, opened on first use: opening
// does no I/O, and only checks that DATABASE_URL's database package was
// imported. A failed first use is tried again by the next call. The table
// is never created implicitly; call Store.CreateSchema (or `keyward init`).
//
// # Change notification
//
// Every write of the Store (Put, Insert, Update, UpdateValue, Delete, and
// each batch of Migrate and Rotate) announces the ids it changed in its own
// transaction, and Store.Watch (a secrets.Watcher, which a Stack with a
// cache runs) reports them, so that every replica's cache drops a changed
// row at once. On PostgreSQL the write's statement itself calls pg_notify
// on the channel Channel(schema.table) (a batch: one statement of NOTIFYs at
// its end), and Watch LISTENs on a connection of its own (fernetstore/postgres
// must be linked), pinged when it has been quiet for 15 s. On MariaDB and
// SQLite the triggers that InstallTriggers (`keyward init --notify`) adds
// log every change in the table keyward_changes (a batch of keyward's logs
// its ids in one row), which Watch polls every poll= interval; without them
// nothing is announced there, and Watch says so once and looks again every
// 5 s. On PostgreSQL the same call adds triggers that announce every other
// writer's changes too (the Python service's; a TRUNCATE as everything),
// and leave keyward's own statements, which start with a marker, alone.
// MariaDB fires no trigger on TRUNCATE. A watch that loses its connection
// reports everything as changed (ChangeHandler.Lost) when it drops, when it
// is back, and every 30 s in between; the stack's cache then fetches those
// refs again, and serves them stale only while the database fails.
//
// A ref names its row in one way only, RowRef's: "db:%31" for row 1 is an
// invalid ref, as "db:007" is, so the cache entry a change invalidates is
// the one that was cached.
//
// # Errors
//
// Every error from Resolve is a *secrets.Error with Op "resolve", Backend
// "fernet" and the ref (the driver layer's rules, the same for every
// backend; see package driver):
//
//   - ErrInvalidRef: the ref is not an id of the table (a positive integer
//     where ids are integers, no larger than the id column holds, such as
//     2147483647 for an INT or SERIAL; where they are text, at most 255
//     bytes and no more characters than the column holds, such as 36 for
//     a VARCHAR(36) on PostgreSQL and MySQL; a UUID, in any form
//     PostgreSQL reads, where the id column is PostgreSQL's uuid), with an
//     optional #field: such an id is refused without asking the database,
//     and Insert refuses it the same way. Or the options name an invalid
//     table or column, or one the table lacks or cannot use. Or Put,
//     Insert, Update or UpdateValue was given an empty value, which would
//     make a row that holds no key.
//   - ErrNotFound: no row with that id, a row that holds no key, or no
//     such #field.
//   - ErrExpired: the row is past its expires_at.
//   - ErrUndecryptable: a token no key in the ring opens (wrong or missing
//     key, tampering), a damaged token, or legacy plaintext outside
//     migration mode (the reason says to run `keyward migrate`).
//   - ErrUnavailable: the database failed or the store is closed; the
//     driver's error is kept in the chain for errors.As.
//   - A call whose ctx ended is secrets.ContextError, which errors.Is
//     matches with the context's error; the Store's own operations (Put,
//     List, Rotate, ...) follow the same rule.
//
// Key errors (KeyRingFromEnv, ParseKeyRing) name the variable or position
// and the expected shape, never the value, not even a prefix.
package fernetstore
