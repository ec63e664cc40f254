// Package audittable writes the audit trail of a keyward stack to a table:
// one row per key use, on SQLite, PostgreSQL or MySQL/MariaDB, off the
// request path. New returns a secrets.Auditor whose Audit only puts the
// event in a bounded queue (never blocking: a full queue drops the event
// and counts it); a goroutine writes the queue in batches, each one
// multi-row INSERT in one transaction. No row holds a secret value: an
// AuditEvent has none.
//
// The default table is the Python service's api_key_usage:
//
//	api_key_usage(id VARCHAR(36) PRIMARY KEY,  -- a UUID string
//	              api_key_id VARCHAR(36) NULL, -- the fernet row id of a db ref
//	              used_at, success BOOLEAN, error_message TEXT NULL,
//	              ref, backend, outcome, cache_hit, requester)
//
// CreateTable makes it with every column. An existing table is used as it
// is: the writer reads which of these columns it has (and their types)
// before its first write and writes only those, so the Python service's
// five-column table works unchanged, as does a success column of an
// integer type (written 1 or 0). With Options.CreateTable the writer
// creates the table only if that read finds it missing, so a database
// user that may INSERT into the table but not CREATE in its schema writes
// it. On a MySQL table of 3-byte utf8 (utf8mb3), characters above U+FFFF
// are written as U+FFFD.
//
// # URLs
//
// Importing the package registers "audit = db" for secrets.OpenConfig:
//
//	audit = db                 # table api_key_usage of DATABASE_URL, created if missing
//	audit = db?table=NAME      # another table (schema.table allowed)
//
// The database comes from DATABASE_URL (default sqlite:keyward.db), opened
// with fernetstore.OpenDB, so the host imports the package of its database
// too (fernetstore/sqlite, fernetstore/postgres or fernetstore/mysql), or
// github.com/keyward/secrets/all. The Stack closes the Auditor, flushing
// the queue, on Close.
//
// # Errors
//
// Audit never fails and never blocks. What it queues is bounded: the text
// of an event is cut to what its column keeps (4096 characters for ref and
// the error's text) and the error itself is not kept. A batch the database
// refuses is tried again while the database answers: if it set any
// api_key_id (a foreign key to api_keys may refuse an id whose row is gone),
// once more with every api_key_id NULL; then in halves, down to single
// rows, so that one row the database refuses does not lose the others
// (at most 64 INSERTs a batch). The rows that still cannot be written are
// counted in Stats().Failed and logged to Options.Logger, at most one line
// every 10 seconds for each kind of warning (the next line counts those
// left out). A panic in Options.KeyID fails its batch's rows, and is
// logged; it does not stop the writer. New fails only
// on bad options or a driver whose dialect it cannot tell; List and Columns
// return *secrets.Error values: ErrInvalidRef for a missing table or a
// filter on a column the table lacks, ErrUnavailable when the database
// cannot be reached.
//
// # Loss
//
// The queue lives in memory. Close writes it (within Options.WriteTimeout);
// a process killed without Close (kill -9, an OOM kill, a crash) loses
// what was queued, up to Options.QueueSize events, plus the batch being
// written. Stats counts every event the Auditor was given as written,
// dropped or failed, except those lost that way.
package audittable
