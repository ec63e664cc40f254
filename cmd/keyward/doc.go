// Command keyward is the operator's tool for the keys around a keyward
// service: it makes encryption keys, stores API keys in the encrypted column,
// lists rows without their values, resolves any ref through the configured
// stack, migrates legacy plaintext, rotates to a new key, and checks that
// everything is in order.
//
//	keyward genkey                          print ENCRYPTION_KEY=<new key>
//	keyward init                            create the default table (no key needed)
//	keyward put --name N --provider P [--expires DATE] < secret
//	keyward update ID [--expires DATE|none] < secret
//	keyward delete ID                       delete a row (no key needed)
//	keyward list                            id, name, provider, state, key, expiry
//	keyward resolve [--reveal] SCHEME:REF   print a value, masked unless --reveal
//	keyward migrate [--dry-run] [--batch N] encrypt legacy plaintext rows
//	keyward rotate  [--dry-run] [--batch N] re-encrypt old-key rows under ENCRYPTION_KEY
//	keyward check                           exit non-zero on anything to fix
//	keyward audit [--ref REF] [--since 24h] [--limit N]   recent key uses, newest first
//	keyward version                         module version, commit, Go version (also --version)
//	keyward completion bash|zsh|fish|powershell
//
// update replaces a row's value with one read from stdin, as put reads it;
// the row keeps its expiry unless --expires sets one (--expires none clears
// it). delete asks for no confirmation and says on stderr which row it
// deleted. Both take the id as list shows it (an integer, or a UUID or other
// text id) and leave judging it to the table; a row that is not there is
// exit 1. completion prints cobra's script for the shell, such as
// source <(keyward completion bash).
//
// migrate and rotate report progress on stderr: a bar when stderr is a
// terminal, otherwise one plain line per batch ("migrate: 500 rows scanned,
// 120 rewritten"); the final report goes to stdout. --batch N is the rows
// per transaction, 1 to 10000 (default 500); a value outside that range is a
// usage error.
//
// A secret value is never an argument (other users see the process list):
// put and update read it from stdin, without echo on a terminal. The only
// output that ever holds a value is that of resolve --reveal. An argument
// where a command takes none, one too many, an unknown command, a flag value
// keyward refuses, or a ref without a scheme is a usage error that says what
// the command takes and never repeats the argument: it may be a key pasted
// in the wrong place.
//
// # URLs
//
// The global flag --db names the database of the encrypted column ("db:"
// refs, and every command but genkey and resolve of other schemes):
//
//	sqlite:PATH                      an SQLite file (the default is sqlite:keyward.db)
//	postgres://user@host:5432/db?sslmode=disable
//	mysql://user@tcp(host:3306)/db   or mysql://user@host:3306/db (MySQL, MariaDB)
//
// The scheme may be in any case (Postgres://). In the URL forms, '/', '?',
// '#', '@' and '%' in a user name or password must be percent-encoded.
//
// With no --db, DATABASE_URL is used, then sqlite:keyward.db. --table and
// --column name an existing table and its value column. Passwords in --db are
// never printed; prefer a password file or PGPASSWORD to a password in the URL.
//
// Keys come from ENCRYPTION_KEY (the primary: encrypts and decrypts) and
// ENCRYPTION_KEY_PREVIOUS (comma-separated, decrypt only), read as
// fernetstore.KeyRingFromLookup reads them. Other backends come from the
// configuration, read as secrets.ConfigFromLookup reads it (KEYWARD_CONFIG or
// KEYWARD_CONFIG_FILE, not both; with neither, every linked backend under its
// defaults: env:, awssm:, azurekv:, vault:). resolve and check check every
// backend URL before they start, and every command that opens the encrypted
// column checks the db line, so an unknown parameter or a bad value is exit
// 3; each backend connects only when a ref needs it. The "db" scheme is always
// the encrypted column on --db: a db line must be a fernet:// URL, and its
// parameters (table, columns, dialect, plaintext=allow) apply, read by
// fernetstore.ParseURL as the fernet:// opener reads them; --table and
// --column take the place of its table and value column.
//
// # Errors
//
// Exit codes, the same for every command:
//
//	0    success; for migrate, rotate and check: every row is encrypted under
//	     the primary key, none expired, and every checked backend answers
//	1    findings or work left: check found something; migrate or rotate (or
//	     their --dry-run) left rows not under the primary key; resolve found
//	     the secret missing, expired, undecryptable or not permitted; update
//	     or delete found no row with that id
//	2    usage error: unknown command or flag, wrong arguments, empty stdin,
//	     a bad --expires date, a --batch out of range, a malformed ref, an id
//	     the table cannot hold (not an integer where ids are integers),
//	     --expires on a table without an expiry column
//	3    configuration error: ENCRYPTION_KEY missing or malformed, a bad --db
//	     URL, a bad KEYWARD_CONFIG (a backend URL with an unknown parameter or
//	     a bad value included), a table or column that does not exist
//	4    a backend is unavailable: the database or a configured backend
//	     cannot be reached (or, in check, opened or authenticated to)
//	130  interrupted (SIGINT or SIGTERM): migrate and rotate stop between
//	     rows; run the same command again to finish
//
// Every error says what to do next, and names refs, rows and variables,
// never a value.
package main
