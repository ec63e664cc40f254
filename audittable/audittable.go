package audittable

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	secrets "github.com/keyward/secrets"
	"github.com/keyward/secrets/fernetstore"
	"github.com/keyward/secrets/internal/refs"
)

// The defaults of Options.
const (
	DefaultQueueSize     = 10000
	DefaultBatchSize     = 100
	DefaultFlushInterval = 200 * time.Millisecond
	DefaultWriteTimeout  = 10 * time.Second
)

// MaxBatchSize bounds Options.BatchSize: a batch is one INSERT of ten
// parameters a row, well inside every database's parameter limit.
const MaxBatchSize = 1000

// Options configures New. A nil *Options means defaults.
type Options struct {
	// Table is the table to write to; "" means api_key_usage
	// (secrets.DefaultAuditTable). It may be schema-qualified.
	Table string
	// Dialect is the database's SQL flavour; "" detects it from the
	// driver (fernetstore.DetectDialect).
	Dialect fernetstore.Dialect
	// QueueSize is how many events wait for the writer at most; an event
	// that finds the queue full is dropped and counted (Stats.Dropped).
	// 0 means DefaultQueueSize.
	QueueSize int
	// BatchSize is how many events one INSERT writes at most (1 to
	// MaxBatchSize); 0 means DefaultBatchSize.
	BatchSize int
	// FlushInterval is how long an event waits for a batch to fill before
	// it is written anyway; 0 means DefaultFlushInterval.
	FlushInterval time.Duration
	// WriteTimeout bounds each batch's write, and Close's wait for the
	// queue to be written; 0 means DefaultWriteTimeout.
	WriteTimeout time.Duration
	// CreateTable makes the writer create the table (CreateTable) before
	// its first write if reading it finds it missing (so a database user
	// without the CREATE privilege writes a table that exists). "audit =
	// db" sets it.
	CreateTable bool
	// Logger receives a line for each batch that cannot be written (never
	// a value: events hold none); nil means no log.
	Logger *slog.Logger
	// KeyID returns the api_key_id of an event, "" for NULL; nil means
	// DefaultKeyID. It runs on the writer, on the event as Audit queued it
	// (its text cut, its Err only the error's text); a panic in it fails
	// the batch's rows and is logged.
	KeyID func(ev secrets.AuditEvent) string
	// Now returns the current time, for an event without one; nil means
	// time.Now.
	Now func() time.Time
}

// Stats counts the events an Auditor has handled, for a metric.
type Stats struct {
	Written uint64 // rows written
	Dropped uint64 // events dropped because the queue was full, or the Auditor closed
	Failed  uint64 // events whose batch could not be written
	Queued  int    // events in the queue now
}

// Auditor writes audit events to a table. Make one with New; it is safe
// for concurrent use. Its Audit never blocks.
type Auditor struct {
	db    *sql.DB
	d     fernetstore.Dialect
	table string // quoted
	name  string // as given, for errors and logs
	o     Options
	ownDB bool // close db on Close (the "audit = db" opener's)

	q        chan secrets.AuditEvent
	flushReq chan chan error
	stop     chan struct{}
	done     chan struct{}
	ctx      context.Context // the writer's; canceled when Close gives up
	cancel   context.CancelFunc

	// mu orders Audit's send against Close: Audit holds it shared while it
	// checks closed and sends, Close takes it to set closed, so no event
	// reaches the queue after the writer's last drain.
	mu        sync.RWMutex
	closed    bool
	closeOnce sync.Once
	closeErr  error

	written, dropped, failed atomic.Uint64

	createMu sync.Mutex
	// The writer's, read with the columns before the first write:
	cols    []string        // the table's columns among Columns, nil until read
	intCols map[string]bool // success and cache_hit columns of an integer type (1/0, not true/false)
	bmpOnly bool            // a MySQL table of 3-byte utf8: characters above U+FFFF become U+FFFD

	failLog, retryLog logLimit
}

var _ secrets.Auditor = (*Auditor)(nil)

// New returns an Auditor writing to opts.Table in db and starts its writer.
// It does no I/O: the writer reads the table's columns (and creates it,
// with Options.CreateTable) before its first write. Close it to flush the
// queue and stop the writer; it does not close db.
func New(db *sql.DB, opts *Options) (*Auditor, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	if db == nil {
		return nil, invalid("audittable.New needs a database")
	}
	if o.Table == "" {
		o.Table = secrets.DefaultAuditTable
	}
	switch {
	case o.QueueSize < 0, o.BatchSize < 0, o.BatchSize > MaxBatchSize, o.FlushInterval < 0, o.WriteTimeout < 0:
		return nil, invalid(fmt.Sprintf("options out of range: QueueSize and FlushInterval at least 0, BatchSize 0 to %d, WriteTimeout at least 0 (0 for the defaults)", MaxBatchSize))
	}
	o.QueueSize = orDefault(o.QueueSize, DefaultQueueSize)
	o.BatchSize = orDefault(o.BatchSize, DefaultBatchSize)
	o.FlushInterval = orDefault(o.FlushInterval, DefaultFlushInterval)
	o.WriteTimeout = orDefault(o.WriteTimeout, DefaultWriteTimeout)
	if o.KeyID == nil {
		o.KeyID = DefaultKeyID
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Dialect == "" {
		d, err := fernetstore.DetectDialect(db)
		if err != nil {
			return nil, invalid(err.Error())
		}
		o.Dialect = d
	}
	table, err := quoteTable(o.Dialect, o.Table)
	if err != nil {
		return nil, err
	}
	a := &Auditor{db: db, d: o.Dialect, table: table, name: o.Table, o: o,
		q: make(chan secrets.AuditEvent, o.QueueSize), flushReq: make(chan chan error),
		stop: make(chan struct{}), done: make(chan struct{})}
	a.ctx, a.cancel = context.WithCancel(context.Background())
	go a.run()
	return a, nil
}

func orDefault[T comparable](v, d T) T {
	var zero T
	if v == zero {
		return d
	}
	return v
}

func invalid(reason string) error {
	return &secrets.Error{Op: "audit", Backend: "audittable", Code: secrets.CodeInvalidRef, Reason: reason}
}

// Audit queues ev for the writer, or drops and counts it if the queue is
// full or the Auditor is closed. It never blocks and never does I/O. What
// it queues is bounded: Ref, Backend, Outcome and Requester are cut to
// what their columns keep, and Err is replaced by its text, cut likewise
// (the error itself is not kept), so a full queue holds at most about
// QueueSize x 24 KB whatever the events' size.
func (a *Auditor) Audit(_ context.Context, ev secrets.AuditEvent) {
	ev = bound(ev)
	a.mu.RLock()
	defer a.mu.RUnlock()
	if a.closed {
		a.dropped.Add(1)
		return
	}
	select {
	case a.q <- ev:
	default:
		a.dropped.Add(1)
	}
}

// The column limits of the text columns, as CreateTable makes them.
const (
	maxBackend   = 64
	maxOutcome   = 32
	maxRequester = 255
)

// bound cuts ev's text to what the writer writes, so that a queued event
// holds no more than that; Err becomes its cut text.
func bound(ev secrets.AuditEvent) secrets.AuditEvent {
	ev.Ref = text(ev.Ref, maxText)
	ev.Backend = text(ev.Backend, maxBackend)
	ev.Outcome = text(ev.Outcome, maxOutcome)
	ev.Requester = text(ev.Requester, maxRequester)
	if ev.Err != nil {
		ev.Err = errorText(text(errString(ev.Err), maxText))
	}
	return ev
}

// errorText is the text of an event's error, all Audit keeps of it.
type errorText string

func (e errorText) Error() string { return string(e) }

// errString is err.Error(), or a placeholder if that panics (a nil
// pointer in a non-nil error): the host's request must not fail for it.
func errString(err error) (s string) {
	defer func() {
		if recover() != nil {
			s = "an error whose text could not be read"
		}
	}()
	return err.Error()
}

// Stats returns the counts so far.
func (a *Auditor) Stats() Stats {
	return Stats{Written: a.written.Load(), Dropped: a.dropped.Load(), Failed: a.failed.Load(), Queued: len(a.q)}
}

// Flush writes the events queued before it was called and returns the
// first write error among them, or ctx's error if ctx ends first. After
// Close it returns nil: Close flushed.
func (a *Auditor) Flush(ctx context.Context) error {
	reply := make(chan error, 1)
	select {
	case a.flushReq <- reply:
	case <-a.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-reply:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close writes what is queued (waiting at most Options.WriteTimeout; what
// is left then counts as failed), stops the writer, and closes the
// database if the Auditor opened it ("audit = db"). Events audited after
// Close are dropped. It is idempotent.
func (a *Auditor) Close() error {
	a.closeOnce.Do(func() {
		a.mu.Lock() // waits for the Audits sending now; later ones see closed
		a.closed = true
		a.mu.Unlock()
		close(a.stop)
		t := time.NewTimer(a.o.WriteTimeout)
		select {
		case <-a.done:
		case <-t.C:
			a.cancel() // the writes under way fail at once, and so does the rest
			<-a.done
		}
		t.Stop()
		a.cancel()
		// The writer drained the queue after closed was set, so it is
		// empty; count anything left as dropped all the same.
		for len(a.q) > 0 {
			<-a.q
			a.dropped.Add(1)
		}
		if a.ownDB {
			a.closeErr = a.db.Close()
		}
	})
	return a.closeErr
}

// run is the writer: it batches the queue into writes until Close.
func (a *Auditor) run() {
	defer close(a.done)
	batch := make([]secrets.AuditEvent, 0, a.o.BatchSize)
	timer := time.NewTimer(a.o.FlushInterval)
	timer.Stop()
	armed := false
	var firstErr error
	write := func() {
		if armed {
			timer.Stop()
			armed = false
		}
		if len(batch) == 0 {
			return
		}
		if err := a.write(batch); err != nil && firstErr == nil {
			firstErr = err
		}
		clear(batch) // drop the events' errors for the collector
		batch = batch[:0]
	}
	// drain writes what the queue holds now, not what keeps arriving.
	drain := func() {
		for n := len(a.q); n > 0; n-- {
			batch = append(batch, <-a.q)
			if len(batch) >= a.o.BatchSize {
				write()
			}
		}
		write()
	}
	for {
		select {
		case ev := <-a.q:
			batch = append(batch, ev)
			if len(batch) >= a.o.BatchSize {
				write()
			} else if !armed {
				timer.Reset(a.o.FlushInterval)
				armed = true
			}
		case <-timer.C:
			armed = false
			write()
		case reply := <-a.flushReq:
			firstErr = nil
			drain()
			reply <- firstErr
		case <-a.stop:
			drain()
			return
		}
	}
}

// maxTries bounds the INSERTs one batch may take when rows are refused
// (the api_key_id retries and the halving), so that a table that refuses
// every row costs a bounded amount of work per batch.
const maxTries = 64

// write writes one batch and counts it. A batch the database refuses is
// not lost as a whole while the database answers: if it set any
// api_key_id, it is tried once more with every api_key_id NULL (a foreign
// key to api_keys refuses an id whose row is gone, deleted since or never
// there); if that fails too, it is written in halves, down to single rows,
// so only the rows the database refuses (a character a utf8mb3 column
// cannot hold, say) count as failed. A panic (in Options.KeyID, the
// host's) fails the rows not yet written, and is logged.
func (a *Auditor) write(batch []secrets.AuditEvent) (err error) {
	ctx, cancel := context.WithTimeout(a.ctx, a.o.WriteTimeout)
	defer cancel()
	w := &batchWrite{a: a, ctx: ctx}
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("audit writer panic: %s", text(fmt.Sprint(p), 200))
		}
		if failed := len(batch) - w.written; failed > 0 {
			a.failed.Add(uint64(failed))
			a.failLog.log(a, "audit rows could not be written", failed, len(batch), err)
		}
	}()
	w.cols, err = a.columns(ctx)
	if err != nil {
		return err
	}
	return w.rows(batch)
}

// batchWrite is one write's state: its columns, rows written, INSERTs
// tried.
type batchWrite struct {
	a       *Auditor
	ctx     context.Context
	cols    []string
	written int
	tries   int
}

// rows writes batch, retrying as write says, and returns the first
// error of the rows not written.
func (w *batchWrite) rows(batch []secrets.AuditEvent) error {
	a := w.a
	w.tries++
	ids, err := a.writeBatch(w.ctx, w.cols, batch, true)
	if err != nil && ids > 0 && w.ctx.Err() == nil && w.tries < maxTries {
		a.retryLog.log(a, "an audit batch with api_key_id set could not be written; writing it again with api_key_id NULL", len(batch), len(batch), err)
		w.tries++
		_, err = a.writeBatch(w.ctx, w.cols, batch, false)
	}
	if err == nil {
		w.written += len(batch)
		a.written.Add(uint64(len(batch)))
		return nil
	}
	// Halve only while the database answers: a database that is down
	// fails every half too.
	if len(batch) == 1 || w.tries >= maxTries || w.ctx.Err() != nil || a.db.PingContext(w.ctx) != nil {
		return err
	}
	mid := len(batch) / 2
	err1 := w.rows(batch[:mid])
	err2 := w.rows(batch[mid:])
	if err1 != nil {
		return err1
	}
	return err2
}

// logEvery is how often each kind of warning is logged at most; the
// warnings between are counted in the next one.
const logEvery = 10 * time.Second

// logLimit rate-limits one kind of warning.
type logLimit struct {
	mu         sync.Mutex
	last       time.Time
	suppressed int
}

// log logs msg for rows of a batch of n rows, unless the same warning was
// logged less than logEvery ago (then it is counted for the next one).
func (l *logLimit) log(a *Auditor, msg string, rows, n int, err error) {
	if a.o.Logger == nil {
		return
	}
	l.mu.Lock()
	now := time.Now()
	if !l.last.IsZero() && now.Sub(l.last) < logEvery {
		l.suppressed++
		l.mu.Unlock()
		return
	}
	suppressed := l.suppressed
	l.last, l.suppressed = now, 0
	l.mu.Unlock()
	attrs := []slog.Attr{slog.String("table", a.name), slog.Int("rows", rows), slog.Int("batch", n)}
	if err != nil {
		attrs = append(attrs, slog.String("error", text(err.Error(), maxText)))
	}
	if suppressed > 0 {
		attrs = append(attrs, slog.Int("warnings_suppressed", suppressed))
	}
	a.o.Logger.LogAttrs(context.Background(), slog.LevelWarn, "keyward audit table: "+msg, attrs...)
}

// writeBatch inserts batch in one transaction, with api_key_id when
// withIDs, and reports how many rows had one.
func (a *Auditor) writeBatch(ctx context.Context, cols []string, batch []secrets.AuditEvent, withIDs bool) (ids int, err error) {
	var q strings.Builder
	args := make([]any, 0, len(batch)*len(cols))
	q.WriteString("INSERT INTO " + a.table + " (")
	for i, c := range cols {
		if i > 0 {
			q.WriteString(", ")
		}
		q.WriteString(quoteName(a.d, c))
	}
	q.WriteString(") VALUES ")
	for i, ev := range batch {
		if i > 0 {
			q.WriteString(", ")
		}
		q.WriteByte('(')
		for j, c := range cols {
			if j > 0 {
				q.WriteString(", ")
			}
			q.WriteString(placeholder(a.d, len(args)+1))
			v := a.value(c, ev, withIDs)
			if c == "api_key_id" && v != nil {
				ids++
			}
			args = append(args, v)
		}
		q.WriteByte(')')
	}
	tx, err := a.db.BeginTx(ctx, nil)
	if err != nil {
		return ids, err
	}
	if _, err := tx.ExecContext(ctx, q.String(), args...); err != nil {
		tx.Rollback()
		return ids, err
	}
	return ids, tx.Commit()
}

// value is column c of ev's row.
func (a *Auditor) value(c string, ev secrets.AuditEvent, withIDs bool) any {
	switch c {
	case "id":
		return uuid.NewString()
	case "api_key_id":
		if !withIDs {
			return nil
		}
		if id := a.o.KeyID(ev); id != "" && len([]rune(id)) <= 36 {
			return id
		}
		return nil
	case "used_at":
		t := ev.Time
		if t.IsZero() {
			t = a.o.Now()
		}
		return timeArg(a.d, t)
	case "success":
		return a.boolean(c, ev.Err == nil)
	case "error_message":
		if ev.Err == nil {
			return nil
		}
		return a.text(errString(ev.Err), maxText)
	case "ref":
		return a.text(ev.Ref, maxText)
	case "backend":
		return a.text(ev.Backend, maxBackend)
	case "outcome":
		return a.text(ev.Outcome, maxOutcome)
	case "cache_hit":
		return a.boolean(c, ev.CacheHit)
	case "requester":
		return a.text(ev.Requester, maxRequester)
	}
	return nil
}

// boolean is a flag as column c takes it: 1 or 0 for an integer column
// (pgx encodes no bool into an integer), else a bool.
func (a *Auditor) boolean(c string, v bool) any {
	if !a.intCols[c] {
		return v
	}
	if v {
		return int64(1)
	}
	return int64(0)
}

// text is text(s, n), with the characters above U+FFFF replaced on a
// table that cannot hold them (MySQL's 3-byte utf8 refuses the row).
func (a *Auditor) text(s string, n int) string {
	s = text(s, n)
	if a.bmpOnly {
		s = strings.Map(func(r rune) rune {
			if r > 0xFFFF {
				return utf8.RuneError
			}
			return r
		}, s)
	}
	return s
}

// maxText bounds the TEXT columns: MySQL's TEXT holds 64 KiB, and no ref
// or error needs more than this.
const maxText = 4096

// text makes s storable in every database: valid UTF-8 without NUL (which
// PostgreSQL refuses in text, failing the whole batch: a ref a tenant
// wrote could otherwise stop the audit trail), at most n characters.
//
// The result never shares s's memory when it is shorter, so that a cut
// event does not keep a long ref alive; the work is bounded by n, not by
// len(s).
func text(s string, n int) string {
	long := len(s) > utf8.UTFMax*n
	if long {
		s = s[:utf8.UTFMax*n] // n characters are at most this many bytes
	}
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.ReplaceAll(s, "\x00", "\uFFFD")
	if utf8.RuneCountInString(s) > n {
		i, k := 0, 0
		for i = range s {
			if k == n {
				break
			}
			k++
		}
		s, long = s[:i], true
	}
	if long {
		s = strings.Clone(s)
	}
	return s
}

// DefaultKeyID is the api_key_id of an event: for an event of the
// encrypted column (Backend "fernet") whose row was read (outcome ok,
// expired or undecryptable), the row id its ref names, the part after the
// scheme without ?options or #field ("db:42#org" is 42); else "".
func DefaultKeyID(ev secrets.AuditEvent) string {
	if ev.Backend != fernetstore.Backend {
		return ""
	}
	switch ev.Outcome {
	case "ok", secrets.CodeExpired.Name(), secrets.CodeUndecryptable.Name():
	default:
		return ""
	}
	_, rest, err := secrets.SplitRef(ev.Ref)
	if err != nil {
		return ""
	}
	rest, _, _ = strings.Cut(rest, "#")
	rest, _, _ = strings.Cut(rest, "?")
	r, err := refs.Parse(rest)
	if err != nil {
		return ""
	}
	return r.Path
}

// dbError is a failure of the database for List and Columns: the error
// of the connector fernetstore.OpenDB made keeps its code (a SQLite file
// that is not there is configuration); any other is ErrUnavailable.
func dbError(ctx context.Context, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return secrets.ContextError("audit", "audittable", "", cerr)
	}
	var se *secrets.Error
	if errors.As(err, &se) {
		return err
	}
	return &secrets.Error{Op: "audit", Backend: "audittable", Code: secrets.CodeUnavailable, Reason: "database error", Err: err}
}
