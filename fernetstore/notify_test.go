package fernetstore

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// changeRecorder is a secrets.ChangeHandler that keeps what it hears.
type changeRecorder struct {
	mu      sync.Mutex
	changed []string
	lost    int
	signal  chan struct{}
}

func newChangeRecorder() *changeRecorder { return &changeRecorder{signal: make(chan struct{}, 1)} }

func (r *changeRecorder) Changed(refs []string) {
	r.mu.Lock()
	r.changed = append(r.changed, refs...)
	r.mu.Unlock()
	r.poke()
}

func (r *changeRecorder) Lost() {
	r.mu.Lock()
	r.lost++
	r.mu.Unlock()
	r.poke()
}

func (r *changeRecorder) poke() {
	select {
	case r.signal <- struct{}{}:
	default:
	}
}

// count is how many times ref was announced, and how many watches began.
func (r *changeRecorder) count(ref string) (int, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, c := range r.changed {
		if c == ref {
			n++
		}
	}
	return n, r.lost
}

// waitFor waits until cond holds; it fails the test after a generous
// deadline (a hang, not a slow machine).
func (r *changeRecorder) waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for !cond() {
		select {
		case <-r.signal:
		case <-time.After(10 * time.Millisecond):
		case <-deadline:
			r.mu.Lock()
			defer r.mu.Unlock()
			t.Fatalf("never heard %s; heard %q and %d watch starts", what, r.changed, r.lost)
		}
	}
}

// heard waits until ref has been announced more than before times.
func (r *changeRecorder) heard(t *testing.T, ref string, before int) int {
	t.Helper()
	var n int
	r.waitFor(t, "a change of "+ref, func() bool { n, _ = r.count(ref); return n > before })
	return n
}

// watch runs s.Watch until the test ends and waits for its first watch.
func watch(t *testing.T, s *Store) (*changeRecorder, func() int) {
	t.Helper()
	r := newChangeRecorder()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Watch(ctx, r) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Watch: %v", err)
		}
	})
	r.waitFor(t, "the watch start", func() bool { _, l := r.count(""); return l > 0 })
	return r, func() int { _, l := r.count(""); return l }
}

func TestWatchPostgres(t *testing.T) {
	db := openTestDB(t, Postgres)
	ctx := context.Background()
	k1, k2 := mustKey(t), mustKey(t)
	s := newTestStore(t, db, mustRing(t, k1), nil)
	table := s.opts.Table
	t.Cleanup(func() { db.Exec("DROP FUNCTION IF EXISTS " + triggerBase(table) + "_notify()") })
	r, lost := watch(t, s)

	id, err := s.Put(ctx, "a", "anthropic", "sk-ant-watch-1", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	n := r.heard(t, id, 0)
	if err := s.Update(ctx, id, "sk-ant-watch-2", time.Time{}); err != nil {
		t.Fatal(err)
	}
	n = r.heard(t, id, n)
	if err := s.UpdateValue(ctx, id, "sk-ant-watch-3"); err != nil {
		t.Fatal(err)
	}
	n = r.heard(t, id, n)

	// A rotation by another store (another replica, or the CLI) announces
	// every row it rewrites.
	var ids []string
	for i := range 3 {
		x, err := s.Put(ctx, fmt.Sprint("r", i), "openai", fmt.Sprint("sk-rot-", i), time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, x)
	}
	counts := map[string]int{}
	for _, x := range ids {
		counts[x] = r.heard(t, x, 0)
	}
	other := New(db, mustRing(t, k2, k1), &Options{Table: table})
	defer other.Close()
	rep, err := other.Rotate(ctx, nil)
	if err != nil || rep.Done != 4 {
		t.Fatalf("rotate: %+v %v", rep, err)
	}
	for _, x := range ids {
		r.heard(t, x, counts[x])
	}
	n = r.heard(t, id, n)

	// The listener's connection killed: the watch starts again (Lost), and
	// goes on hearing.
	before := lost()
	var pids []int
	rows, err := db.Query("SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND query = $1", `LISTEN "`+Channel("public."+table)+`"`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var pid int
		rows.Scan(&pid)
		pids = append(pids, pid)
	}
	rows.Close()
	if len(pids) != 1 {
		t.Fatalf("want the one listening backend, found %v", pids)
	}
	if _, err := db.Exec("SELECT pg_terminate_backend($1)", pids[0]); err != nil {
		t.Fatal(err)
	}
	// Lost twice: when the connection drops, and when the new watch begins.
	r.waitFor(t, "the watch starting again", func() bool { return lost() >= before+2 })
	if err := s.Delete(ctx, id); err != nil {
		t.Fatal(err)
	}
	n = r.heard(t, id, n)

	// A write that is not keyward's is heard once the trigger is in.
	if err := s.InstallTriggers(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.InstallTriggers(ctx); err != nil {
		t.Fatalf("a second install: %v", err)
	}
	c0, _ := r.count(ids[0])
	if _, err := db.Exec(fmt.Sprintf("UPDATE %s SET api_key = $1 WHERE id = $2", table), mustEncrypt(t, mustRing(t, k1), "sk-by-python"), ids[0]); err != nil {
		t.Fatal(err)
	}
	r.heard(t, ids[0], c0)
	// A fresh store goes on announcing its writes itself (a migration that
	// drops the trigger must not silence it), and the trigger leaves them
	// alone (one announcement per write: TestUpdateNotifiesPostgres).
	fresh := New(db, mustRing(t, k1), &Options{Table: table})
	defer fresh.Close()
	if _, err := fresh.Describe(ctx); err != nil {
		t.Fatal(err)
	}
	b, _ := fresh.table(ctx, "test")
	sc, _ := b.schemaOf(ctx)
	if !sc.pgNotify || !strings.HasPrefix(sc.q.updateN, announceMarker(sc.channel)) {
		t.Fatal("keyward's own writes do not announce themselves with the marker the trigger leaves alone")
	}
	c1, _ := r.count(ids[1])
	if err := fresh.UpdateValue(ctx, ids[1], "sk-after-trigger"); err != nil {
		t.Fatal(err)
	}
	r.heard(t, ids[1], c1)
}

// TestWatchPolling: MariaDB and SQLite announce through the change log the
// triggers write; without them Watch says what to run.
func TestWatchPolling(t *testing.T) {
	for _, d := range []Dialect{SQLite, MySQL} {
		t.Run(string(d), func(t *testing.T) {
			db := openTestDB(t, d)
			ctx := context.Background()
			k1 := mustKey(t)
			s := newTestStore(t, db, mustRing(t, k1), &Options{PollInterval: 20 * time.Millisecond})
			table := s.opts.Table
			if err := s.InstallTriggers(ctx); err != nil {
				t.Fatal(err)
			}
			if err := s.InstallTriggers(ctx); err != nil {
				t.Fatalf("a second install: %v", err)
			}
			r, _ := watch(t, s)
			id, err := s.Put(ctx, "a", "anthropic", "sk-ant-poll-1", time.Time{})
			if err != nil {
				t.Fatal(err)
			}
			n := r.heard(t, id, 0)
			if err := s.UpdateValue(ctx, id, "sk-ant-poll-2"); err != nil {
				t.Fatal(err)
			}
			n = r.heard(t, id, n)
			ph := "?"
			if _, err := db.Exec(fmt.Sprintf("UPDATE %s SET api_key = %s WHERE id = %s", table, ph, ph), mustEncrypt(t, mustRing(t, k1), "sk-by-other"), id); err != nil {
				t.Fatal(err)
			}
			n = r.heard(t, id, n)
			if err := s.Delete(ctx, id); err != nil {
				t.Fatal(err)
			}
			r.heard(t, id, n)

			// A rotation by another store announces every row it rewrote,
			// logged by keyward itself in one row for the batch.
			var ids []string
			for i := range 3 {
				x, err := s.Put(ctx, fmt.Sprint("r", i), "openai", fmt.Sprint("sk-rot-", i), time.Time{})
				if err != nil {
					t.Fatal(err)
				}
				ids = append(ids, x)
			}
			counts := map[string]int{}
			for _, x := range ids {
				counts[x] = r.heard(t, x, 0)
			}
			var before int
			if err := db.QueryRow("SELECT count(*) FROM "+ChangeLogTable+" WHERE tbl = ?", table).Scan(&before); err != nil {
				t.Fatal(err)
			}
			other := New(db, mustRing(t, mustKey(t), k1), &Options{Table: table})
			defer other.Close()
			if rep, err := other.Rotate(ctx, nil); err != nil || rep.Done != 3 {
				t.Fatalf("rotate: %+v %v", rep, err)
			}
			for _, x := range ids {
				r.heard(t, x, counts[x])
			}
			var after int
			if err := db.QueryRow("SELECT count(*) FROM "+ChangeLogTable+" WHERE tbl = ?", table).Scan(&after); err != nil {
				t.Fatal(err)
			}
			if after-before != 1 {
				t.Errorf("the rotation of 3 rows logged %d changes, want 1 (its batch)", after-before)
			}
			// After the batch, a single write through the same pool is
			// logged by the trigger again.
			c, _ := r.count(ids[0])
			if err := other.UpdateValue(ctx, ids[0], "sk-after-batch"); err != nil {
				t.Fatal(err)
			}
			r.heard(t, ids[0], c)
		})
	}
}

// TestWatchSQLitePythonWrite: the Python service's own sqlite3 updating a
// row is heard, through the trigger, by a Go replica's watch.
func TestWatchSQLitePythonWrite(t *testing.T) {
	needPython(t)
	db := openTestDB(t, SQLite)
	ctx := context.Background()
	k1 := mustKey(t)
	s := newTestStore(t, db, mustRing(t, k1), &Options{PollInterval: 20 * time.Millisecond})
	if err := s.InstallTriggers(ctx); err != nil {
		t.Fatal(err)
	}
	id, err := s.Put(ctx, "a", "anthropic", "sk-ant-py-1", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	r, _ := watch(t, s)
	var file string
	if err := db.QueryRow("SELECT file FROM pragma_database_list WHERE name = 'main'").Scan(&file); err != nil {
		t.Fatal(err)
	}
	script := `
import json, os, sqlite3, sys
from cryptography.fernet import Fernet
a = json.load(sys.stdin)
c = sqlite3.connect(a["file"])
c.execute("UPDATE " + a["table"] + " SET api_key = ? WHERE id = ?", (Fernet(os.environ["ENCRYPTION_KEY"]).encrypt(b"sk-ant-py-2").decode(), int(a["id"])))
c.commit()
print(json.dumps({"ok": True}))
`
	var out struct{ OK bool }
	runPython(t, script, []string{"ENCRYPTION_KEY=" + k1}, map[string]string{"file": file, "table": s.opts.Table, "id": id}, &out)
	if !out.OK {
		t.Fatal("the Python update did not run")
	}
	r.heard(t, id, 0)
	got, err := s.Resolve(ctx, id)
	if err != nil || got.Reveal() != "sk-ant-py-2" {
		t.Fatalf("after Python's write: %v", err)
	}
}

func TestParsePayload(t *testing.T) {
	for _, c := range []struct {
		in      string
		refs    []string
		all, ok bool
	}{
		{`[7, 8]`, []string{"7", "8"}, false, true},
		{`["a#b", "c?d", "e%f"]`, []string{"a%23b", "c%3Fd", "e%25f"}, false, true},
		{`*`, nil, true, true},
		{`not json`, nil, false, false},
		{`[{"x": 1}]`, nil, false, false},
		{`[]`, nil, false, true},
	} {
		refs, all, ok := parsePayload(c.in)
		if all != c.all || ok != c.ok || !slices.Equal(refs, c.refs) {
			t.Errorf("parsePayload(%q) = %q, %v, %v; want %q, %v, %v", c.in, refs, all, ok, c.refs, c.all, c.ok)
		}
	}
}

func FuzzParsePayload(f *testing.F) {
	for _, s := range []string{`[1,2]`, `["x"]`, `*`, `[`, `[1e400]`, `["\u0000"]`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		refs, all, ok := parsePayload(p)
		if (all || !ok) && refs != nil {
			t.Fatal("a list with everything, or with an unreadable payload")
		}
		for _, r := range refs {
			if strings.ContainsAny(r, "#?") {
				t.Fatalf("ref %q would be read with a #field or ?options", r)
			}
		}
	})
}

// TestWatchPostgresSmallPool: the listener has a connection of its own, so
// a pool of one connection still serves the store (a listener holding the
// pool's connection made every write wait forever).
func TestWatchPostgresSmallPool(t *testing.T) {
	db := openTestDB(t, Postgres)
	db.SetMaxOpenConns(1)
	s := newTestStore(t, db, mustRing(t, mustKey(t)), nil)
	r, _ := watch(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	id, err := s.Put(ctx, "a", "anthropic", "sk-ant-small-pool", time.Time{})
	if err != nil {
		t.Fatalf("put with the watch running on a one-connection pool: %v", err)
	}
	r.heard(t, id, 0)
}

func TestPollParam(t *testing.T) {
	o, err := ParseURL("fernet://?table=t&poll=250ms")
	if err != nil || o.PollInterval != 250*time.Millisecond {
		t.Fatalf("poll=250ms: %+v %v", o, err)
	}
	for _, bad := range []string{"poll=0s", "poll=1ms", "poll=2h", "poll=soon", "poll=-1s"} {
		_, err := ParseURL("fernet://?" + bad)
		if err == nil || !strings.Contains(err.Error(), "poll= is how often") {
			t.Errorf("%s: %v", bad, err)
		}
	}
}

// TestPruneKeepsNewest: the change log's prune drops changes older than an
// hour but always keeps the newest row, so a new change never reuses a
// sequence number a watcher has seen (SQLite's rowid is the largest plus
// one).
func TestPruneKeepsNewest(t *testing.T) {
	for _, d := range []Dialect{SQLite, MySQL} {
		t.Run(string(d), func(t *testing.T) {
			db := openTestDB(t, d)
			ctx := context.Background()
			s := newTestStore(t, db, mustRing(t, mustKey(t)), nil)
			if err := s.InstallTriggers(ctx); err != nil {
				t.Fatal(err)
			}
			table := s.opts.Table
			var ids []string
			for i := range 3 {
				id, err := s.Put(ctx, fmt.Sprint("p", i), "openai", "sk-prune", time.Time{})
				if err != nil {
					t.Fatal(err)
				}
				ids = append(ids, id)
			}
			old := "CAST(strftime('%s', 'now') AS INTEGER) - 7200"
			if d == MySQL {
				old = "NOW() - INTERVAL 2 HOUR"
			}
			// The log's rows up to ours made old (the log is in time order:
			// the prune finds the first young row by sequence number).
			var top int64
			db.QueryRow("SELECT MAX(seq) FROM " + ChangeLogTable).Scan(&top)
			if _, err := db.Exec("UPDATE "+ChangeLogTable+" SET at = "+old+" WHERE seq <= ?", top); err != nil {
				t.Fatal(err)
			}
			b, _ := s.table(ctx, "test")
			b.pruneChangeLog(ctx)
			// Other packages' tests may write to the shared log meanwhile:
			// the newest row overall survives, and at most one of ours.
			var n int
			var newest int64
			db.QueryRow("SELECT count(*) FROM "+ChangeLogTable+" WHERE tbl = ?", table).Scan(&n)
			db.QueryRow("SELECT COALESCE(MAX(seq), 0) FROM " + ChangeLogTable).Scan(&newest)
			if newest < top || n > 1 {
				t.Fatalf("after the prune: %d old rows of the table left, newest row %d (before: %d); want the newest kept and the rest gone", n, newest, top)
			}
			if _, err := s.Put(ctx, "after", "openai", "sk-prune", time.Time{}); err != nil {
				t.Fatal(err)
			}
			var next int64
			db.QueryRow("SELECT MAX(seq) FROM " + ChangeLogTable).Scan(&next)
			if next <= top {
				t.Fatalf("a change after the prune got sequence number %d, not after %d", next, top)
			}
		})
	}
}
