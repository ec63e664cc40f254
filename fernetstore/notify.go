package fernetstore

import (
	"context"
	"crypto/sha256"
	"database/sql"
	sqldriver "database/sql/driver"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	secrets "github.com/keyward/secrets"
	"github.com/keyward/secrets/driver"
)

// Change notification: every write to a key table announces the ids it
// changed, in the write's own transaction, and Store.Watch reports them to a
// cache (see secrets.Watcher).
//
//   - PostgreSQL: NOTIFY on the channel "keyward:TABLE" with a JSON array of
//     the changed ids as payload (or "*": everything may have changed),
//     delivered when the write commits. keyward's own writes send it
//     themselves (the statement and its pg_notify are one statement); the
//     trigger InstallTriggers adds sends it for every other writer's
//     (the Python service's) too, and keyward's writes then leave it to it.
//   - MariaDB and SQLite: a row per changed id in the change log table
//     keyward_changes, written by the triggers InstallTriggers adds (for
//     keyward's writes and everyone else's alike), read by a cheap indexed
//     poll of what is newer than the last change seen.

// ChangeLogTable is the change log of MariaDB and SQLite.
const ChangeLogTable = "keyward_changes"

// DefaultPollInterval is how often Watch polls the change log on MariaDB and
// SQLite when Options.PollInterval is zero.
const DefaultPollInterval = time.Second

// The bounds of the poll= parameter.
const (
	minPollInterval = 10 * time.Millisecond
	maxPollInterval = time.Hour
)

// changeLogKeep is how long the change log keeps a change; a watcher that
// has not polled for half of it starts over (it cannot know what it missed).
const changeLogKeep = time.Hour

// gapWait is how long a poller goes on looking for a change-log sequence
// number it has not seen below one it has: a transaction that took its
// number earlier but committed later (MariaDB's auto-increment is taken at
// insert, not at commit). A transaction open longer than this between its
// write and its commit is missed.
const gapWait = 30 * time.Second

// notifyPayloadMax is the largest payload sent; PostgreSQL refuses 8000
// bytes or more, and a larger change is announced as "*".
const notifyPayloadMax = 7900

// Channel is the PostgreSQL notification channel of a table, given with its
// schema ("public.api_keys"): "keyward:" and that name, or a hash of it when
// that would be longer than an identifier.
func Channel(table string) string {
	c := "keyward:" + table
	if len(c) > 63 {
		h := sha256.Sum256([]byte(table))
		c = "keyward:" + hex.EncodeToString(h[:12])
	}
	return c
}

// triggerBase is the prefix of the names of the triggers of table.
func triggerBase(table string) string {
	n := strings.NewReplacer(".", "_", `"`, "", "`", "").Replace(table)
	if len(n) > 40 {
		h := sha256.Sum256([]byte(table))
		n = hex.EncodeToString(h[:8])
	}
	return "keyward_" + n
}

// Listener is how a database package listens on a PostgreSQL channel over a
// connection of db: it calls ready once it listens, then note with each
// payload, until ctx ends or the connection fails, and returns why.
type Listener func(ctx context.Context, db *sql.DB, channel string, ready func(), note func(payload string)) error

var (
	listenerMu sync.Mutex
	listener   Listener
)

// RegisterListener is called by fernetstore/postgres, which links pgx.
func RegisterListener(l Listener) {
	listenerMu.Lock()
	defer listenerMu.Unlock()
	listener = l
}

func registeredListener() Listener {
	listenerMu.Lock()
	defer listenerMu.Unlock()
	return listener
}

// InstallTriggers makes the table's changes reach every replica, whoever
// writes them: on PostgreSQL a trigger that NOTIFYs the changed ids (keyward
// does so itself, but the Python service does not); on MariaDB and SQLite
// the change log table and triggers that write every inserted, updated and
// deleted id to it, which Watch polls. It is idempotent, changes no column
// of the table, and needs the privilege to create triggers (and, on
// MariaDB and SQLite, a table). It is what `keyward init --notify` runs.
func (s *Store) InstallTriggers(ctx context.Context) error {
	const op = "install triggers"
	b, sc, err := s.schema(ctx, op)
	if err != nil {
		return err
	}
	if strings.Contains(sc.info.Table, ".") && b.d != Postgres {
		return errorf(op, "", secrets.CodeInvalidRef, nil,
			"the table %s is schema-qualified: change triggers are installed on a table of the current database only; connect to that database and name the table without its schema", sc.info.Table)
	}
	stmts := b.triggerDDL(sc)
	err = b.execAll(ctx, stmts)
	// SQLite next to a busy writer: the schema change may still meet a
	// lock past busy_timeout's wait; the statements are idempotent.
	for attempt := 0; err != nil && b.d == SQLite && attempt < 5 && ctx.Err() == nil && strings.Contains(err.Error(), "SQLITE_BUSY"); attempt++ {
		time.Sleep(time.Duration(attempt+1) * 50 * time.Millisecond)
		err = b.execAll(ctx, stmts)
	}
	if err != nil {
		return opError(ctx, op, "", err)
	}
	// On PostgreSQL, a store that read the table before keeps sending its
	// own NOTIFY as well until it is opened again: twice the same news.
	return nil
}

func (b *base) execAll(ctx context.Context, stmts []string) error {
	if b.d == SQLite {
		// BEGIN IMMEDIATE: the write lock first, waiting out a writing
		// service (busy_timeout), where a deferred transaction's snapshot
		// would go stale and fail with SQLITE_BUSY.
		conn, err := b.db.Conn(ctx)
		if err != nil {
			return err
		}
		defer conn.Close()
		if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
			return err
		}
		for _, st := range stmts {
			if _, err := conn.ExecContext(ctx, st); err != nil {
				conn.ExecContext(context.WithoutCancel(ctx), "ROLLBACK")
				return err
			}
		}
		_, err = conn.ExecContext(ctx, "COMMIT")
		return err
	}
	tx, err := b.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	for _, st := range stmts {
		if _, err := tx.ExecContext(ctx, st); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// sqlString is s as an SQL string literal.
func sqlString(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

func (b *base) triggerDDL(sc *schema) []string {
	table := sc.info.Table
	qt, id := sc.q.table, sc.q.id
	tb := triggerBase(table)
	switch b.d {
	case Postgres:
		fn, _ := b.d.quoteIdent(tb+"_notify", false)
		if schemaName, _ := splitTable(table); schemaName != nil {
			fn, _ = b.d.quoteIdent(fmt.Sprint(schemaName)+"."+tb+"_notify", true)
		}
		idExpr := id
		if sc.padded {
			idExpr = "rtrim(" + id + "::text)" // CHAR(n) ids, as keyward reads them
		}
		// One NOTIFY per statement, of up to 100 ids each (the transition
		// tables hold the statement's rows), "*" if that is too long; an
		// UPDATE that changed an id announces the old one too, a TRUNCATE
		// everything. keyward's own statements announce themselves (see
		// announceMarker), so the trigger leaves them alone.
		agg := func(from string) string {
			return fmt.Sprintf(`FOR ids IN SELECT json_agg(keyward_c.keyward_id)::text FROM (SELECT %s AS keyward_id, (row_number() OVER () - 1) / 100 AS keyward_g FROM %s) AS keyward_c GROUP BY keyward_c.keyward_g LOOP
    IF octet_length(ids) > %d THEN ids := '*'; END IF;
    PERFORM pg_notify(%s, ids);
  END LOOP;`, idExpr, from, notifyPayloadMax, sqlString(sc.channel))
		}
		body := fmt.Sprintf(`CREATE OR REPLACE FUNCTION %s() RETURNS trigger LANGUAGE plpgsql AS $keyward$
DECLARE ids text;
BEGIN
  IF starts_with(current_query(), %s) THEN RETURN NULL; END IF;
  IF TG_OP = 'TRUNCATE' THEN PERFORM pg_notify(%s, '*'); RETURN NULL; END IF;
  %s
  IF TG_OP = 'UPDATE' THEN
    %s
  END IF;
  RETURN NULL;
END
$keyward$`, fn, sqlString(announceMarker(sc.channel)), sqlString(sc.channel), agg("keyward_changed"),
			agg(fmt.Sprintf("keyward_old WHERE NOT EXISTS (SELECT 1 FROM keyward_changed WHERE keyward_changed.%s = keyward_old.%s)", id, id)))
		stmts := []string{body}
		for _, ev := range []struct{ name, event, ref string }{
			{"ins", "INSERT", "REFERENCING NEW TABLE AS keyward_changed FOR EACH STATEMENT"},
			{"upd", "UPDATE", "REFERENCING OLD TABLE AS keyward_old NEW TABLE AS keyward_changed FOR EACH STATEMENT"},
			{"del", "DELETE", "REFERENCING OLD TABLE AS keyward_changed FOR EACH STATEMENT"},
			{"trunc", "TRUNCATE", "FOR EACH STATEMENT"},
		} {
			tn, _ := b.d.quoteIdent(tb+"_"+ev.name, false)
			stmts = append(stmts,
				fmt.Sprintf("DROP TRIGGER IF EXISTS %s ON %s", tn, qt),
				fmt.Sprintf("CREATE TRIGGER %s AFTER %s ON %s %s EXECUTE FUNCTION %s()", tn, ev.event, qt, ev.ref, fn))
		}
		return stmts
	case MySQL:
		log := "CREATE TABLE IF NOT EXISTS " + ChangeLogTable + ` (
	seq BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
	tbl VARCHAR(128) NOT NULL,
	id TEXT NULL,
	ids MEDIUMTEXT NULL,
	at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`
		stmts := []string{log}
		// A batch of keyward's own (a rotation) sets @keyward_announcing and
		// logs its ids in one row: a row per id costs the batch a third
		// more. CREATE OR REPLACE: MariaDB's DDL is not transactional, and
		// a DROP then CREATE would leave writes between them unlogged.
		ins := func(row string) string {
			return fmt.Sprintf("INSERT INTO %s (tbl, id) VALUES (%s, %s.%s);", ChangeLogTable, sqlString(table), row, id)
		}
		for _, ev := range []struct{ name, event, body string }{
			{"ins", "INSERT", ins("NEW")},
			{"upd", "UPDATE", ins("NEW") + fmt.Sprintf(" IF NOT (NEW.%s <=> OLD.%s) THEN %s END IF;", id, id, ins("OLD"))},
			{"del", "DELETE", ins("OLD")},
		} {
			tn, _ := b.d.quoteIdent(tb+"_"+ev.name, false)
			stmts = append(stmts, fmt.Sprintf("CREATE OR REPLACE TRIGGER %s AFTER %s ON %s FOR EACH ROW BEGIN IF @keyward_announcing IS NULL THEN %s END IF; END",
				tn, ev.event, qt, ev.body))
		}
		return stmts
	default: // SQLite
		// strftime, not unixepoch(): the trigger also runs in the SQLite
		// of whoever else writes (Python's), which may be older than 3.38.
		// A batch of keyward's own puts a row in keyward_announcing for
		// its transaction (SQLite has one writer at a time, so no other
		// writer sees it) and logs its ids in one row. No AUTOINCREMENT
		// and no index on at: each is one more page a write commits, and
		// the prune always keeps the newest row, so sequence numbers never
		// go back.
		log := "CREATE TABLE IF NOT EXISTS " + ChangeLogTable + ` (
	seq INTEGER PRIMARY KEY,
	tbl TEXT NOT NULL,
	id TEXT,
	ids TEXT,
	at INTEGER NOT NULL DEFAULT (CAST(strftime('%s', 'now') AS INTEGER))
)`
		stmts := []string{log, "CREATE TABLE IF NOT EXISTS " + announcingTable + " (x INTEGER)"}
		ins := func(row string) string {
			return fmt.Sprintf("INSERT INTO %s (tbl, id) VALUES (%s, %s.%s);", ChangeLogTable, sqlString(table), row, id)
		}
		for _, ev := range []struct{ name, event, body string }{
			{"ins", "INSERT", ins("NEW")},
			{"upd", "UPDATE", ins("NEW") + fmt.Sprintf(" INSERT INTO %s (tbl, id) SELECT %s, OLD.%s WHERE OLD.%s IS NOT NEW.%s;", ChangeLogTable, sqlString(table), id, id, id)},
			{"del", "DELETE", ins("OLD")},
		} {
			tn, _ := b.d.quoteIdent(tb+"_"+ev.name, false)
			// Only keyward's batches (UPDATEs) log themselves: the INSERT
			// and DELETE triggers skip the WHEN, which costs a put a
			// sixth.
			when := ""
			if ev.event == "UPDATE" {
				when = " WHEN NOT EXISTS (SELECT 1 FROM " + announcingTable + ")"
			}
			stmts = append(stmts, "DROP TRIGGER IF EXISTS "+tn,
				fmt.Sprintf("CREATE TRIGGER %s AFTER %s ON %s FOR EACH ROW%s BEGIN %s END",
					tn, ev.event, qt, when, ev.body))
		}
		return stmts
	}
}

// announceMarker begins every statement of keyward's that announces its own
// changes to channel on PostgreSQL, which that table's trigger leaves alone
// (current_query()). It names the channel: the rows another table loses in
// the same statement (ON DELETE CASCADE, a user's trigger) are still
// announced by that table's trigger.
func announceMarker(channel string) string {
	return "/* keyward:announced " + strings.NewReplacer("*/", "*_/", "\n", " ").Replace(channel) + " */ "
}

// announcingTable marks, on SQLite, a transaction of keyward's that logs
// its changes itself.
const announcingTable = "keyward_announcing"

// triggersInstalled reports whether a MariaDB or SQLite table has all
// three of the change triggers InstallTriggers makes (PostgreSQL's writes
// announce themselves, with or without them).
func (b *base) triggersInstalled(ctx context.Context, table string) (bool, error) {
	tb := triggerBase(table)
	names := []any{tb + "_ins", tb + "_upd", tb + "_del"}
	var n int
	var err error
	switch b.d {
	case MySQL:
		err = b.db.QueryRowContext(ctx, "SELECT count(*) FROM information_schema.triggers WHERE trigger_schema = DATABASE() AND trigger_name IN (?, ?, ?)", names...).Scan(&n)
	default:
		err = b.db.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND name IN (?, ?, ?)", names...).Scan(&n)
	}
	return n == 3, err
}

// announce returns the statement that runs dml (an INSERT, UPDATE or
// DELETE ending where a RETURNING clause may follow) and, in the same
// statement, NOTIFYs the ids it changed, on PostgreSQL (sc.pgNotify); its
// one row is the number of rows changed and, for an INSERT whose id the
// database assigns, the id. The channel is its last parameter, number
// param. Elsewhere it returns "" and the write is made as it is (MariaDB
// and SQLite announce through their triggers).
func (sc *schema) announce(dml, idRef string, param int) string {
	if !sc.pgNotify {
		return ""
	}
	agg := "json_agg(id)"
	if sc.padded {
		agg = "json_agg(rtrim(id::text))"
	}
	return fmt.Sprintf(announceMarker(sc.channel)+`WITH keyward_w AS (%s RETURNING %s AS id), keyward_j AS (SELECT count(*) AS n, min(id::text) AS first, `+agg+`::text AS ids FROM keyward_w)
SELECT n, first, CASE WHEN n > 0 THEN (SELECT 1 FROM pg_notify($%d, CASE WHEN octet_length(ids) > %d THEN '*' ELSE ids END)) END FROM keyward_j`, dml, idRef, param, notifyPayloadMax)
}

// maxParam is the highest $N parameter of a PostgreSQL query.
func maxParam(query string) int {
	n := 0
	for _, m := range paramRE.FindAllStringSubmatch(query, -1) {
		if v, err := strconv.Atoi(m[1]); err == nil {
			n = max(n, v)
		}
	}
	return n
}

var paramRE = regexp.MustCompile(`\$([0-9]+)`)

// execAnnounced runs a write of one row through its prepared statement:
// dml as it is, or its announcing form (query, from announce) with the
// channel appended. It returns the rows changed and the id the first of
// them has.
func (b *base) execAnnounced(ctx context.Context, sc *schema, dml, query string, args ...any) (int64, string, error) {
	if query == "" {
		st, err := b.writeStmt(ctx, dml)
		if err != nil {
			return 0, "", err
		}
		res, err := st.ExecContext(ctx, args...)
		if err != nil {
			return 0, "", err
		}
		n, err := res.RowsAffected()
		return n, "", err
	}
	st, err := b.writeStmt(ctx, query)
	if err != nil {
		return 0, "", err
	}
	var n int64
	var first sql.NullString
	var sent sql.NullInt64
	err = st.QueryRowContext(ctx, append(args, sc.channel)...).Scan(&n, &first, &sent)
	return n, first.String, err
}

// writeStmt returns the prepared statement of a single-row write, preparing
// it on first use.
func (b *base) writeStmt(ctx context.Context, query string) (*sql.Stmt, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if st := b.writes[query]; st != nil {
		return st, nil
	}
	if b.closed {
		return nil, driver.Errorf(secrets.CodeUnavailable, "the store is closed")
	}
	st, err := b.db.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	if b.writes == nil {
		b.writes = map[string]*sql.Stmt{}
	}
	b.writes[query] = st
	return st, nil
}

// beginLogged starts, in a batch transaction of keyward's own on a MariaDB
// or SQLite table with the change triggers, the logging of its changes by
// keyward itself (endLogged), in place of the triggers' row per id.
func (b *base) beginLogged(ctx context.Context, tx *sql.Tx, sc *schema) error {
	if !sc.logged {
		return nil
	}
	q := "SET @keyward_announcing = 1"
	if b.d == SQLite {
		q = "INSERT INTO " + announcingTable + " (x) VALUES (1)"
	}
	return b.txExec(ctx, tx, q)
}

// txExec runs query in tx, on SQLite through the store's prepared statement
// of it (SQLite compiles each statement it is given: a batch's three small
// ones are a good part of what announcing costs a rotation).
func (b *base) txExec(ctx context.Context, tx *sql.Tx, query string, args ...any) error {
	if b.d != SQLite {
		// Over the network a statement prepared on another connection
		// costs one more round trip here than it saves.
		_, err := tx.ExecContext(ctx, query, args...)
		return err
	}
	st, err := b.writeStmt(ctx, query)
	if err != nil {
		return err
	}
	_, err = tx.StmtContext(ctx, st).ExecContext(ctx, args...)
	return err
}

// endLogged logs ids (query arguments of the id column) as one change and
// ends what beginLogged began, in the same transaction. A transaction that
// fails between the two is rolled back, and resetLogged clears MariaDB's
// session variable.
func (b *base) endLogged(ctx context.Context, tx *sql.Tx, sc *schema, ids []any) error {
	if !sc.logged {
		return nil
	}
	for len(ids) > 0 {
		chunk := ids[:min(len(ids), 1000)]
		ids = ids[len(chunk):]
		list := make([]any, len(chunk))
		for i, id := range chunk {
			list[i] = sc.jsonID(id)
		}
		js, err := json.Marshal(list)
		if err != nil {
			return err
		}
		if err := b.txExec(ctx, tx, "INSERT INTO "+ChangeLogTable+" (tbl, ids) VALUES (?, ?)", sc.info.Table, string(js)); err != nil {
			return err
		}
	}
	q := "SET @keyward_announcing = NULL"
	if b.d == SQLite {
		q = "DELETE FROM " + announcingTable
	}
	return b.txExec(ctx, tx, q)
}

// jsonID is an id query argument as a change announces it: an integer as a
// JSON number, text as a string, a CHAR(n) id without its padding (as refs
// name it).
func (sc *schema) jsonID(id any) any {
	if n, ok := id.(int64); ok {
		return n
	}
	v := fmt.Sprint(id)
	if sc.padded {
		v = strings.TrimRight(v, " ")
	}
	return v
}

// notifyBatch NOTIFYs ids (query arguments of the id column) in tx, on
// PostgreSQL (sc.pgNotify): one statement, payloads of at most
// notifyPayloadMax bytes each.
func (b *base) notifyBatch(ctx context.Context, tx *sql.Tx, sc *schema, ids []any) error {
	if !sc.pgNotify || len(ids) == 0 {
		return nil
	}
	var payloads []string
	var cur []byte
	flush := func() {
		if len(cur) > 0 {
			payloads = append(payloads, string(append(cur, ']')))
			cur = nil
		}
	}
	for _, id := range ids {
		js, err := json.Marshal(sc.jsonID(id))
		if err != nil {
			return err
		}
		if len(js)+2 > notifyPayloadMax {
			// An id too long for a payload: everything may have changed.
			payloads, cur = []string{"*"}, nil
			break
		}
		if len(cur)+len(js)+2 > notifyPayloadMax {
			flush()
		}
		if cur == nil {
			cur = append(cur, '[')
		} else {
			cur = append(cur, ',')
		}
		cur = append(cur, js...)
	}
	flush()
	var sb strings.Builder
	args := []any{sc.channel}
	sb.WriteString("SELECT 1")
	for _, p := range payloads {
		args = append(args, p)
		fmt.Fprintf(&sb, ", pg_notify($1, $%d)", len(args))
	}
	_, err := tx.ExecContext(ctx, sb.String(), args...)
	return err
}

// resetLogged ends a MariaDB batch's own connection: after a failed batch
// (its transaction rolled back, whatever ended it) it clears
// @keyward_announcing, and a connection on which that fails is discarded,
// never handed back to the pool with the variable set (every later write
// on it would go unlogged).
func (b *base) resetLogged(ctx context.Context, conn *sql.Conn, failed error) {
	defer conn.Close()
	if failed == nil {
		return // endLogged cleared it in the committed transaction
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if _, err := conn.ExecContext(rctx, "SET @keyward_announcing = NULL"); err != nil {
		conn.Raw(func(any) error { return sqldriver.ErrBadConn })
	}
}

// Watch reports the table's changes to h (see secrets.Watcher), until ctx
// ends or the store is closed. It starts once the store has been opened by
// a resolve or one of its own operations (it never opens the database
// itself, so a stack that is never used does no I/O), and reconnects with a
// growing wait when its connection drops. Each watch established calls
// h.Lost first, and so does each one that drops, and a watch that stays
// down calls it again every lostEvery (a stack's cache then fetches those
// refs again, and serves them stale only while the backend fails). On PostgreSQL it LISTENs over a
// connection of its own (it needs fernetstore/postgres linked), and pings it
// when it has been quiet; on MariaDB and SQLite it polls the change log
// every Options.PollInterval, once the table's change triggers are there
// (`keyward init --notify` installs them; until then it says so once in the
// log and looks again every 5 s).
func (s *Store) Watch(ctx context.Context, h secrets.ChangeHandler) error {
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	if !s.watching(stop) {
		return nil // closed
	}
	for {
		if _, ok := s.Loaded(); ok {
			break
		}
		t := time.NewTimer(200 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
	co := &coalescing{h: h}
	defer co.stop()
	h = co
	wait := time.Duration(0)
	var downSince, lastLost time.Time
	for {
		if wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil
			case <-t.C:
			}
		}
		if ctx.Err() != nil {
			return nil
		}
		if !downSince.IsZero() && time.Since(downSince) > lostEvery && time.Since(lastLost) > lostEvery {
			// Down too long to vouch for anything cached.
			lastLost = time.Now()
			h.Lost()
		}
		established := false
		began := time.Now()
		err := s.watchOnce(ctx, h, &established)
		if ctx.Err() != nil {
			return nil
		}
		var nw *notWatchable
		if errors.As(err, &nw) {
			if established {
				h.Lost() // it was watching (the triggers went away)
			}
			if nw.permanent {
				return nw.err
			}
			s.watchWarnOnce(nw.err)
			wait = notWatchableWait
			downSince = time.Time{} // nothing was vouched for
			continue
		}
		if established {
			// The connection dropped: what changed from now on is not
			// heard until a watch is back (which calls Lost again).
			h.Lost()
			downSince, lastLost = time.Now(), time.Now()
		} else if downSince.IsZero() {
			downSince = began
		}
		// A watch that held for a while was a connection lost: try again
		// at once. One that failed at once (a server refusing, a poll that
		// fails) backs off, so it does not purge the cache in a loop.
		if established && time.Since(began) > 10*time.Second {
			wait = 0
		}
		wait = min(max(2*wait, 100*time.Millisecond), 30*time.Second)
		if err != nil {
			s.watchWarn(err)
		}
	}
}

// lostEvery: a watch down this long reports Lost, and again as long as it
// stays down (a variable for the tests).
var lostEvery = 30 * time.Second

const (
	// notWatchableWait: how often a watch looks again for triggers that
	// are not installed.
	notWatchableWait = 5 * time.Second
	// lostGap: at most one purge this often (see coalescing).
	lostGap = 100 * time.Millisecond
	// triggerCheck: how often a MariaDB poller checks that the triggers
	// are still there (a migration that rebuilds the table drops them);
	// SQLite's, in-process, checks at every poll.
	triggerCheck = 10 * time.Second
)

// notWatchable is a configuration that cannot be watched (yet): Watch
// returns a permanent one, and looks again later for the others.
type notWatchable struct {
	err       error
	permanent bool
}

func (e *notWatchable) Error() string { return e.err.Error() }

// coalescing passes changes on, and limits "everything changed" to one
// purge every lostGap, with one more at the end of it if more came
// meanwhile (so none is lost): anyone who can connect to PostgreSQL can
// NOTIFY, and a flood of "*" must not purge the cache thousands of times a
// second.
type coalescing struct {
	h       secrets.ChangeHandler
	mu      sync.Mutex
	last    time.Time
	pending bool
	timer   *time.Timer
	stopped bool
}

// stop cancels a purge still to come: none is made after Watch returns.
func (c *coalescing) stop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stopped = true
	if c.timer != nil {
		c.timer.Stop()
	}
}

func (c *coalescing) Changed(refs []string) { c.h.Changed(refs) }

func (c *coalescing) Lost() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return
	}
	if since := time.Since(c.last); since < lostGap {
		if !c.pending {
			c.pending = true
			c.timer = time.AfterFunc(lostGap-since, func() {
				c.mu.Lock()
				c.pending = false
				c.last = time.Now()
				stopped := c.stopped
				c.mu.Unlock()
				if !stopped {
					c.h.Lost()
				}
			})
		}
		return
	}
	c.last = time.Now()
	c.h.Lost()
}

func (s *Store) watchOnce(ctx context.Context, h secrets.ChangeHandler, established *bool) error {
	b, sc, err := s.schema(ctx, "watch")
	if err != nil {
		if secrets.CodeOf(err) == secrets.CodeInvalidRef {
			return &notWatchable{err: err} // a table not made yet, say
		}
		return err
	}
	if b.d == Postgres {
		l := registeredListener()
		if l == nil {
			return &notWatchable{permanent: true, err: errorf("watch", "", secrets.CodeInvalidRef, nil,
				`listening for changes on PostgreSQL needs the pgx driver linked: import _ "github.com/keyward/secrets/fernetstore/postgres"`)}
		}
		return l(ctx, b.db, sc.channel, func() {
			*established = true
			h.Lost()
		}, func(payload string) {
			refs, all, ok := parsePayload(payload)
			switch {
			case !ok:
				// Not keyward's: anyone may NOTIFY on a channel. A
				// payload of ours is always well-formed, so nothing is
				// lost by leaving it.
			case all:
				h.Lost()
			case len(refs) > 0:
				h.Changed(refs)
			}
		})
	}
	ok, err := b.triggersInstalled(ctx, sc.info.Table)
	if err != nil {
		return err
	}
	if !ok {
		return &notWatchable{err: errorf("watch", "", secrets.CodeInvalidRef, nil,
			"the table %s has no change triggers, so no replica hears of a change before its cache's TTL ends: install them with keyward init --notify (Store.InstallTriggers)", sc.info.Table)}
	}
	return b.poll(ctx, sc, s.opts.PollInterval, h, established)
}

// parsePayload reads a NOTIFY payload or a change-log row's ids: a JSON
// array of ids (strings or numbers), or "*" (all). ok is false for anything
// else.
func parsePayload(p string) (refs []string, all, ok bool) {
	if p == "*" {
		return nil, true, true
	}
	var ids []json.RawMessage
	if err := json.Unmarshal([]byte(p), &ids); err != nil {
		return nil, false, false
	}
	for _, raw := range ids {
		var s string
		if err := json.Unmarshal(raw, &s); err == nil {
			refs = append(refs, RowRef(s))
			continue
		}
		var n json.Number
		if err := json.Unmarshal(raw, &n); err == nil {
			refs = append(refs, n.String())
			continue
		}
		return nil, false, false
	}
	return refs, false, true
}

// poll follows the change log. Sequence numbers are taken at insert and
// committed in any order (MariaDB), shared by every table, and may skip
// (auto_increment_increment, rolled-back inserts): so each poll reads the
// whole log above floor, where every row at or below floor was seen at
// least gapWait ago, announces this table's rows it has not seen, and moves
// floor up to the newest row seen gapWait ago. A transaction that wrote its
// row below one already seen, and committed within gapWait, is still found.
func (b *base) poll(ctx context.Context, sc *schema, interval time.Duration, h secrets.ChangeHandler, established *bool) error {
	if interval <= 0 {
		interval = DefaultPollInterval
	}
	table := sc.info.Table
	// Start at the newest row older than gapWait, by the database's clock:
	// what is above it is read now and counted as seen (Lost covers it),
	// and what commits later below the newest row is still found.
	var floor int64
	// Walking the primary key down from the newest row (MAX(seq) with a
	// condition on at would read the whole log on MariaDB).
	err := b.db.QueryRowContext(ctx, b.pollStartQuery()).Scan(&floor)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return err
	}
	// seen: the rows read above floor, in the order first read (queue);
	// top: the newest of them; gaps: sequence numbers below top not read
	// yet, which a late commit may still fill. A poll reads what is above
	// top and the gaps, not the whole window again; past maxGapList gaps
	// (auto_increment_increment above 1, a burst of rollbacks), or after a
	// jump it did not follow number by number, it reads all above floor
	// until floor has caught up.
	type seenAt struct {
		seq int64
		at  time.Time
	}
	var queue []seenAt
	seen := map[int64]struct{}{}
	gaps := map[int64]struct{}{}
	top, rangeUntil := floor, int64(0)
	read := func(announce bool) error {
		var sb strings.Builder
		sb.WriteString("SELECT seq, tbl, id, ids FROM " + ChangeLogTable + " WHERE seq > ?")
		args := []any{top}
		if len(gaps) > maxGapList || floor < rangeUntil {
			args[0] = floor
		} else if len(gaps) > 0 {
			sb.WriteString(" OR seq IN (")
			i := 0
			for g := range gaps {
				if i > 0 {
					sb.WriteString(",")
				}
				sb.WriteString(strconv.FormatInt(g, 10))
				i++
			}
			sb.WriteString(")")
		}
		sb.WriteString(" ORDER BY seq")
		rows, err := b.db.QueryContext(ctx, sb.String(), args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		now := time.Now()
		var refs []string
		all := false
		for rows.Next() {
			var seq int64
			var tbl string
			var id, ids sql.NullString
			if err := rows.Scan(&seq, &tbl, &id, &ids); err != nil {
				return err
			}
			if _, ok := seen[seq]; ok || seq <= floor {
				continue
			}
			seen[seq] = struct{}{}
			queue = append(queue, seenAt{seq, now})
			delete(gaps, seq)
			if seq > top {
				if seq-top > maxGapList {
					rangeUntil = seq // too many numbers skipped to list
				} else {
					for g := top + 1; g < seq; g++ {
						if _, ok := seen[g]; !ok {
							gaps[g] = struct{}{}
						}
					}
				}
				top = seq
			}
			if !announce || tbl != table {
				continue
			}
			if id.Valid {
				refs = append(refs, RowRef(id.String))
			}
			if ids.Valid {
				more, everything, ok := parsePayload(ids.String)
				all = all || everything || !ok
				refs = append(refs, more...)
			}
		}
		if err := rows.Err(); err != nil {
			return err
		}
		if all {
			h.Lost()
		} else if len(refs) > 0 {
			h.Changed(refs)
		}
		// floor: the newest sequence number read gapWait ago, below which
		// everything was read (or never committed in time).
		for len(queue) > 0 && now.Sub(queue[0].at) > gapWait {
			floor = max(floor, queue[0].seq)
			delete(seen, queue[0].seq)
			queue = queue[1:]
		}
		for g := range gaps {
			if g <= floor {
				delete(gaps, g)
			}
		}
		if len(queue) == 0 {
			queue = nil // let the backing array go
		}
		return nil
	}
	if err := read(false); err != nil {
		return err
	}
	*established = true
	h.Lost()
	lastOK, lastPrune, lastCheck := time.Now(), time.Time{}, time.Now()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		if time.Since(lastOK) > changeLogKeep/2 {
			return errors.New("the change log was not read for too long")
		}
		if err := read(true); err != nil {
			return err
		}
		now := time.Now()
		lastOK = now
		if b.d == SQLite || now.Sub(lastCheck) > triggerCheck {
			lastCheck = now
			ok, err := b.triggersInstalled(ctx, table)
			if err != nil {
				return err
			}
			if !ok {
				// Dropped (a migration rebuilt the table): nothing is
				// logged any more; the watch starts over when they are back.
				return &notWatchable{err: errorf("watch", "", secrets.CodeInvalidRef, nil,
					"the change triggers of the table %s are gone (was it rebuilt by a migration?), so replicas hear of no change: run keyward init --notify again", table)}
			}
		}
		if now.Sub(lastPrune) > time.Minute {
			lastPrune = now
			b.pruneChangeLog(ctx)
		}
	}
}

// pollStartQuery finds a poller's first floor: the newest change older than
// gapWait, walking the primary key down from the newest.
func (b *base) pollStartQuery() string {
	return "SELECT seq FROM " + ChangeLogTable + " WHERE at < " + b.logAgo(gapWait) + " ORDER BY seq DESC LIMIT 1"
}

// maxGapList bounds the missing sequence numbers a poll names.
const maxGapList = 1000

// logAgo is the SQL for the change log's time d ago.
func (b *base) logAgo(d time.Duration) string {
	secs := strconv.Itoa(int(d / time.Second))
	if b.d == MySQL {
		return "NOW() - INTERVAL " + secs + " SECOND"
	}
	return "CAST(strftime('%s', 'now') AS INTEGER) - " + secs
}

// pruneChangeLog drops changes older than changeLogKeep; any replica may,
// and one that may not (no DELETE privilege) leaves it to the others.
// The newest row is always kept, so that the next sequence number is
// never one a watcher has already seen (SQLite's rowid, with no
// AUTOINCREMENT, is the largest plus one).
func (b *base) pruneChangeLog(ctx context.Context) {
	// The rows below the first one young enough to keep, by the primary
	// key (walking up from the oldest row reads only what is deleted).
	var first int64
	err := b.db.QueryRowContext(ctx, "SELECT seq FROM "+ChangeLogTable+" WHERE at >= "+b.logAgo(changeLogKeep)+" ORDER BY seq LIMIT 1").Scan(&first)
	if errors.Is(err, sql.ErrNoRows) {
		// Nothing young: keep the newest row only.
		err = b.db.QueryRowContext(ctx, "SELECT seq FROM "+ChangeLogTable+" ORDER BY seq DESC LIMIT 1").Scan(&first)
	}
	if err != nil {
		return
	}
	b.db.ExecContext(ctx, "DELETE FROM "+ChangeLogTable+" WHERE seq < ?", first)
}

// watching registers stop, called by Close; false if the store is closed.
func (s *Store) watching(stop context.CancelFunc) bool {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.wclosed {
		return false
	}
	s.wstops = append(s.wstops, stop)
	return true
}

// stopWatches ends every Watch; later ones return at once.
func (s *Store) stopWatches() {
	s.wmu.Lock()
	s.wclosed = true
	stops := s.wstops
	s.wstops = nil
	s.wmu.Unlock()
	for _, stop := range stops {
		stop()
	}
}

// watchWarnOnce logs, once per store, why its table cannot be watched yet.
func (s *Store) watchWarnOnce(err error) {
	s.wmu.Lock()
	done := s.wtold
	s.wtold = true
	s.wmu.Unlock()
	if !done {
		slog.Warn("keyward: this table's changes cannot be watched yet, so a replica's cache keeps a changed key until its TTL ends; the watch looks again every 5s", "backend", Backend, "err", err)
	}
}

// watchWarn logs a watch's connection failure, at most once a minute.
func (s *Store) watchWarn(err error) {
	s.wmu.Lock()
	now := time.Now()
	if now.Sub(s.wwarned) < time.Minute {
		s.wmu.Unlock()
		return
	}
	s.wwarned = now
	s.wmu.Unlock()
	slog.Warn("keyward: the fernet store lost its change watch; the cache is purged of its refs when it is back", "backend", Backend, "err", dbError(err))
}

var _ secrets.Watcher = (*Store)(nil)
