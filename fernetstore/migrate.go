package fernetstore

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"

	secrets "github.com/keyward/secrets"
)

// WalkOptions configures Migrate and Rotate. A nil *WalkOptions means the defaults.
type WalkOptions struct {
	// BatchSize is the number of rows read and updated per transaction:
	// 1 to MaxBatchSize, or 0 for DefaultBatchSize. Others are refused.
	BatchSize int
	// DryRun counts what would change without writing anything.
	DryRun bool
	// After resumes the walk after this position (Report.Position of an
	// earlier run); "" starts at the beginning. Positions are SQLite rowids
	// or, elsewhere, row ids (integers or text). A rerun from the start is
	// also safe: rows already done are recognised by their HMAC and skipped
	// cheaply.
	After string
	// Progress, if set, is called after each batch with the report so far.
	Progress func(Report)
}

// DefaultBatchSize is the batch size when WalkOptions.BatchSize is 0.
const DefaultBatchSize = 500

// MaxBatchSize bounds WalkOptions.BatchSize. A batch is one transaction: it
// holds its rows' locks (on SQLite the database's write lock, which the
// service's writes wait for, up to their busy timeout) and the old and new
// values of its rows in memory. 10,000 rows are 0.25 to 0.6 s of work on a
// quiet machine (BENCHMARKS.md: 40k rows/s on SQLite, 29k on PostgreSQL,
// 18k on MariaDB, all in batches of 500), already a long time to hold a lock.
const MaxBatchSize = 10000

// check refuses options out of range, before any I/O.
func (o *WalkOptions) check(op string) error {
	if o.BatchSize < 0 || o.BatchSize > MaxBatchSize {
		return &secrets.Error{Op: op, Backend: Backend, Code: secrets.CodeInvalidRef,
			Reason: fmt.Sprintf("WalkOptions.BatchSize %d is out of range: give 1 to %d rows per transaction, such as %d, or 0 for that default",
				o.BatchSize, MaxBatchSize, DefaultBatchSize)}
	}
	return nil
}

// checkAfter refuses a resume position that cannot be one of this table's.
func (o *WalkOptions) checkAfter(op string, sc *schema) error {
	if o.After == "" {
		return nil
	}
	ok := len(o.After) <= maxIDLen
	if sc.rowid || !sc.text {
		_, ok = rowID(o.After)
	}
	if !sc.rowid {
		ok = ok && sc.fits(o.After) == nil
	}
	if !ok {
		return &secrets.Error{Op: op, Backend: Backend, Code: secrets.CodeInvalidRef,
			Reason: "WalkOptions.After is not a position of this table: give \"\" to start at the beginning, or a Report.Position to resume, such as the Position an interrupted run reported"}
	}
	return nil
}

// maxUndecryptableIDs bounds Report.UndecryptableIDs; the count is exact.
const maxUndecryptableIDs = 1000

// Report says what a Migrate or Rotate did. It holds row ids, never values.
type Report struct {
	Scanned        int  // rows read
	Done           int  // rows rewritten (or, with DryRun, that would be)
	Skipped        int  // rows changed or deleted by someone else between read and write: left alone
	Undecryptable  int  // token-shaped rows no key opens: left untouched
	AlreadyCurrent int  // rows already in the wanted form
	Plaintext      int  // Rotate only: plaintext rows it leaves for Migrate
	References     int  // rows whose key lives elsewhere (RefColumns): left alone
	Null           int  // rows that hold no key: a NULL or empty value and no reference
	DryRun         bool // nothing was written
	// Position is the last position of a batch that was written (or, with
	// DryRun, counted): the SQLite rowid, else the id. Pass it as
	// WalkOptions.After to resume; after an error it is the end of the last
	// committed batch, so a resume walks the failed batch again. (The
	// counters, by contrast, include the rows the failed batch scanned.)
	Position string
	// UndecryptableIDs lists the ids of undecryptable rows (the first 1000).
	UndecryptableIDs []string
}

// Migrate encrypts every legacy plaintext row under the primary key. Tokens
// are left as they are (Rotate moves old-key tokens to the primary). It is
// safe while the service runs, from several processes at once, and after a
// crash at any point: each row is rewritten with a compare-and-swap on its old
// value, so a concurrent write is never overwritten (it counts as Skipped),
// and a rerun finishes the job.
func (s *Store) Migrate(ctx context.Context, opts *WalkOptions) (Report, error) {
	return s.walk(ctx, "migrate", opts, func(b *base, v string) (string, outcome, error) {
		switch Classify(v) {
		case KindToken:
			if _, err := b.ring.KeyOf(v); err != nil {
				return "", undecryptableRow, nil
			}
			return "", current, nil
		case KindMalformedToken:
			return "", undecryptableRow, nil
		}
		tok, err := b.ring.Encrypt([]byte(v))
		return tok, rewrite, err
	})
}

// Rotate re-encrypts under the primary key every token made under a previous
// key, keeping its Fernet timestamp (as Python's MultiFernet.rotate does).
// Plaintext rows are counted and left for Migrate; undecryptable rows are
// left untouched and reported by id. Like Migrate it is batched, resumable,
// and uses compare-and-swap updates, so it is safe to run while the service
// runs, from two processes at once, and to kill at any point.
func (s *Store) Rotate(ctx context.Context, opts *WalkOptions) (Report, error) {
	return s.walk(ctx, "rotate", opts, func(b *base, v string) (string, outcome, error) {
		switch Classify(v) {
		case KindPlaintext:
			return "", plaintextRow, nil
		case KindMalformedToken:
			return "", undecryptableRow, nil
		}
		i, err := b.ring.KeyOf(v)
		if err != nil {
			return "", undecryptableRow, nil
		}
		if i == 0 {
			return "", current, nil
		}
		tok, _, err := b.ring.reencrypt(v)
		if err != nil {
			// The HMAC matched but the plaintext did not unpad: damaged.
			return "", undecryptableRow, nil
		}
		return tok, rewrite, nil
	})
}

// testHookBeforeApply runs between reading a batch and writing it (tests
// use it to make a concurrent write land in that window).
var testHookBeforeApply func(n int)

type outcome uint8

const (
	current outcome = iota
	rewrite
	undecryptableRow
	plaintextRow
)

type pending struct {
	id       any // the id as a query argument
	pos      any // SQLite rowid tables: the rowid, which finds the row without an index search
	old, new string
}

func (s *Store) walk(ctx context.Context, op string, opts *WalkOptions, decide func(*base, string) (string, outcome, error)) (Report, error) {
	var o WalkOptions
	if opts != nil {
		o = *opts
	}
	if err := o.check(op); err != nil {
		return Report{DryRun: o.DryRun}, err
	}
	if o.BatchSize == 0 {
		o.BatchSize = DefaultBatchSize
	}
	rep := Report{DryRun: o.DryRun, Position: o.After}
	b, sc, err := s.schema(ctx, op)
	if err != nil {
		return rep, err
	}
	if err := b.needRing(); err != nil {
		return rep, storeError(ctx, op, "", err)
	}
	if err := o.checkAfter(op, sc); err != nil {
		return rep, err
	}
	batch := make([]pending, 0, o.BatchSize)
	refs := make([]sql.NullString, len(sc.refs))
	for {
		if err := ctx.Err(); err != nil {
			return rep, opError(ctx, op, "", err)
		}
		batch = batch[:0]
		n := 0
		// pos is where this batch ends; it reaches rep.Position only once
		// the batch is written, so a report from a failed batch never
		// points past rows left unwritten.
		pos := rep.Position
		var rows *sql.Rows
		if rep.Position == "" {
			rows, err = b.db.QueryContext(ctx, sc.q.batchFirst, o.BatchSize)
		} else {
			rows, err = b.db.QueryContext(ctx, sc.q.batch, sc.walkArg(rep.Position), o.BatchSize)
		}
		if err != nil {
			return rep, opError(ctx, op, "", err)
		}
		for rows.Next() {
			var id string
			var v sql.NullString
			dest := []any{scanID{&pos}, scanID{&id}, &v}
			for i := range refs {
				dest = append(dest, &refs[i])
			}
			if err := rows.Scan(dest...); err != nil {
				rows.Close()
				return rep, opError(ctx, op, "", err)
			}
			n++
			rep.Scanned++
			if v.String == "" {
				// Never encrypted: an empty value is no key (Python's
				// service reads it as unset), and a token of "" would read
				// as a key.
				if slices.ContainsFunc(refs, func(r sql.NullString) bool { return r.String != "" }) {
					rep.References++
				} else {
					rep.Null++
				}
				continue
			}
			tok, out, err := decide(b, v.String)
			if err != nil {
				rows.Close()
				return rep, &secrets.Error{Op: op, Backend: Backend, Ref: id, Code: secrets.CodeUnknown, Reason: "encrypt", Err: err}
			}
			switch out {
			case current:
				rep.AlreadyCurrent++
			case plaintextRow:
				rep.Plaintext++
			case undecryptableRow:
				rep.Undecryptable++
				if len(rep.UndecryptableIDs) < maxUndecryptableIDs {
					rep.UndecryptableIDs = append(rep.UndecryptableIDs, id)
				}
			case rewrite:
				batch = append(batch, pending{id: sc.idArg(id), pos: sc.walkArg(pos), old: v.String, new: tok})
			}
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return rep, opError(ctx, op, "", err)
		}
		if testHookBeforeApply != nil {
			testHookBeforeApply(len(batch))
		}
		if o.DryRun {
			rep.Done += len(batch)
		} else if len(batch) > 0 {
			done, err := s.applyBatch(ctx, b, sc, batch)
			if err != nil {
				return rep, opError(ctx, op, "", err)
			}
			rep.Done += done
			rep.Skipped += len(batch) - done
		}
		rep.Position = pos
		if o.Progress != nil {
			p := rep
			p.UndecryptableIDs = append([]string(nil), rep.UndecryptableIDs...)
			o.Progress(p)
		}
		if n < o.BatchSize {
			return rep, nil
		}
	}
}

// applyBatch writes a batch in one transaction (one commit, one fsync), each
// row with a compare-and-swap on its old value. A transaction that fails (a
// deadlock or serialization failure with a concurrent rotation) is retried:
// the compare-and-swap makes a retry harmless.
func (s *Store) applyBatch(ctx context.Context, b *base, sc *schema, batch []pending) (int, error) {
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		done, err := s.tryBatch(ctx, b, sc, batch)
		if err == nil {
			return done, nil
		}
		if ctx.Err() != nil {
			return 0, err
		}
		lastErr = err
	}
	return 0, lastErr
}

func (s *Store) tryBatch(ctx context.Context, b *base, sc *schema, batch []pending) (done int, err error) {
	var tx *sql.Tx
	if sc.logged && b.d == MySQL {
		// The batch sets a session variable: on a connection of its own,
		// so that a batch that fails can clear it (resetLogged) before the
		// connection goes back to the pool.
		var conn *sql.Conn
		if conn, err = b.db.Conn(ctx); err != nil {
			return 0, err
		}
		defer func() { b.resetLogged(ctx, conn, err) }() // the named result: how the batch ended
		if tx, err = conn.BeginTx(ctx, nil); err != nil {
			return 0, err
		}
	} else if tx, err = b.db.BeginTx(ctx, nil); err != nil {
		return 0, err
	}
	defer func() {
		if err != nil {
			tx.Rollback()
		}
	}()
	if err := b.beginLogged(ctx, tx, sc); err != nil {
		return 0, err
	}
	var ids []any
	if sc.logged || sc.pgNotify {
		ids = make([]any, len(batch))
		for i, p := range batch {
			ids[i] = p.id
		}
	}
	if b.d == SQLite {
		// In-process: one prepared statement per row costs no round trip.
		query := sc.q.cas
		if sc.rowid {
			query = sc.q.casRowid
		}
		st, err := tx.PrepareContext(ctx, query)
		if err != nil {
			return 0, err
		}
		defer st.Close()
		for _, p := range batch {
			args := []any{p.new, p.id, p.old}
			if sc.rowid {
				args = append(args, p.pos)
			}
			res, err := st.ExecContext(ctx, args...)
			if err != nil {
				return 0, err
			}
			if n, err := res.RowsAffected(); err == nil && n > 0 {
				done++
			}
		}
		if err := b.endLogged(ctx, tx, sc, ids); err != nil {
			return 0, err
		}
		return done, tx.Commit()
	}
	// Over the network: one multi-row compare-and-swap per chunk, so a
	// batch costs a few round trips instead of one per row.
	for len(batch) > 0 {
		chunk := batch[:min(len(batch), casChunk)]
		batch = batch[len(chunk):]
		query, args := b.multiCAS(sc, chunk)
		if sc.pgNotify {
			query = announceMarker(sc.channel) + query // announced by notifyBatch below
		}
		res, err := tx.ExecContext(ctx, query, args...)
		if err != nil {
			return 0, err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return 0, err
		}
		done += int(n)
	}
	if err := b.endLogged(ctx, tx, sc, ids); err != nil {
		return 0, err
	}
	// PostgreSQL: the batch's ids in one statement of NOTIFYs at its end,
	// in its transaction (a notifying form of each chunk's statement cost
	// the batch an eighth more).
	if err := b.notifyBatch(ctx, tx, sc, ids); err != nil {
		return 0, err
	}
	return done, tx.Commit()
}

const casChunk = 100

// multiCAS builds one UPDATE that swaps every row of chunk whose value is
// still the old one, byte for byte (sameValue): the row-by-row
// compare-and-swap, joined.
func (b *base) multiCAS(sc *schema, chunk []pending) (string, []any) {
	q := &sc.q
	var sb strings.Builder
	args := make([]any, 0, 3*len(chunk))
	switch b.d {
	case Postgres:
		fmt.Fprintf(&sb, "UPDATE %s AS t SET %s = v.nv FROM (VALUES ", q.table, q.value)
		for i, p := range chunk {
			if i > 0 {
				sb.WriteString(", ")
			}
			n := len(args)
			// The id is cast to the id column's own type, so the join
			// compares like with like and uses the primary key's index.
			fmt.Fprintf(&sb, "($%d::%s, $%d::text, $%d::text)", n+1, sc.idCast, n+2, n+3)
			args = append(args, p.id, p.new, p.old)
		}
		fmt.Fprintf(&sb, ") AS v(id, nv, ov) WHERE t.%s = v.id AND %s", q.id, b.d.sameValue("t."+q.value, "v.ov"))
	default: // MySQL
		fmt.Fprintf(&sb, "UPDATE %s AS t JOIN (", q.table)
		// An id column in another character set (latin1) is compared with
		// its own ids, converted back: a utf8mb4 parameter with a letter
		// outside ASCII is an illegal mix of collations (error 1267).
		idp := "?"
		if sc.idConvert != "" {
			idp = sc.idConvert
		}
		for i, p := range chunk {
			if i == 0 {
				sb.WriteString("SELECT " + idp + " AS id, ? AS nv, ? AS ov")
			} else {
				sb.WriteString(" UNION ALL SELECT " + idp + ", ?, ?")
			}
			args = append(args, p.id, p.new, p.old)
		}
		fmt.Fprintf(&sb, ") AS v ON t.%s = v.id AND %s SET t.%s = v.nv", q.id, b.d.sameValue("t."+q.value, "v.ov"), q.value)
	}
	return sb.String(), args
}
