package fernetstore

import (
	"bufio"
	"context"
	"database/sql"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	secrets "github.com/keyward/secrets"
)

// fillRows inserts n rows: values[i] stored by store (under its ring's
// primary) or, for plaintext, as is. It returns ids in insert order.
func fillRows(t testing.TB, db *sql.DB, d Dialect, table string, ring *KeyRing, values []string) []string {
	t.Helper()
	ctx := context.Background()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	ph := "?"
	if d == Postgres {
		ph = "$1"
	}
	ids := make([]string, len(values))
	for i, v := range values {
		stored := v
		if ring != nil {
			stored = mustEncrypt(t, ring, v)
		}
		var id int64
		if d == Postgres {
			err = tx.QueryRowContext(ctx, fmt.Sprintf("INSERT INTO %s (name, api_key) VALUES ('bulk', %s) RETURNING id", table, ph), stored).Scan(&id)
		} else {
			var res sql.Result
			res, err = tx.ExecContext(ctx, fmt.Sprintf("INSERT INTO %s (name, api_key) VALUES ('bulk', %s)", table, ph), stored)
			if err == nil {
				id, err = res.LastInsertId()
			}
		}
		if err != nil {
			tx.Rollback()
			t.Fatal(err)
		}
		ids[i] = strconv.FormatInt(id, 10)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	return ids
}

func makeValues(n int, prefix string) []string {
	vs := make([]string, n)
	for i := range vs {
		vs[i] = fmt.Sprintf("sk-ant-test-%s-%d-%s", prefix, i, randHex(6))
	}
	return vs
}

// checkAll resolves every id and compares with want; every row must be
// under the primary key.
func checkAll(t testing.TB, s *Store, ids, want []string) {
	t.Helper()
	for i, id := range ids {
		sec, err := s.Resolve(context.Background(), id)
		if err != nil {
			t.Fatalf("row %s: %v", id, err)
		}
		if sec.Reveal() != want[i] {
			t.Fatalf("row %s decrypts to a different value than was stored", id)
		}
		if sec.Version != PrimaryKeyName {
			t.Fatalf("row %s is under %q after the walk", id, sec.Version)
		}
	}
}

func TestMigrateAndRotate(t *testing.T) {
	forEachDB(t, func(t *testing.T, db *sql.DB, d Dialect) {
		ctx := context.Background()
		k1, k2 := mustKey(t), mustKey(t)
		ring := mustRing(t, k1, k2)
		s := newTestStore(t, db, ring, &Options{AllowPlaintext: true})
		table := s.opts.Table
		plain := makeValues(120, "plain")
		old := makeValues(130, "old")
		cur := makeValues(40, "cur")
		ids := fillRows(t, db, d, table, nil, plain)
		ids = append(ids, fillRows(t, db, d, table, mustRing(t, k2), old)...)
		ids = append(ids, fillRows(t, db, d, table, mustRing(t, k1), cur)...)
		bad := fillRows(t, db, d, table, mustRing(t, mustKey(t)), []string{"sk-lost"})
		want := append(append(append([]string{}, plain...), old...), cur...)

		dry, err := s.Rotate(ctx, &WalkOptions{DryRun: true, BatchSize: 50})
		if err != nil || dry.Done != 130 || dry.Plaintext != 120 || !dry.DryRun {
			t.Fatalf("dry run: %+v %v", dry, err)
		}
		var batches int
		rep, err := s.Migrate(ctx, &WalkOptions{BatchSize: 50, Progress: func(Report) { batches++ }})
		if err != nil {
			t.Fatal(err)
		}
		if rep.Scanned != 291 || rep.Done != 120 || rep.AlreadyCurrent != 170 || rep.Undecryptable != 1 || rep.UndecryptableIDs[0] != bad[0] || rep.Skipped != 0 {
			t.Fatalf("migrate report %+v", rep)
		}
		if batches != 6 {
			t.Fatalf("progress called %d times, want 6 (291 rows in batches of 50)", batches)
		}
		// Resume from the middle: only the rows after Position are walked.
		end, _ := strconv.ParseInt(rep.Position, 10, 64)
		mid, err := s.Rotate(ctx, &WalkOptions{BatchSize: 100, After: strconv.FormatInt(end-100, 10)})
		if err != nil || mid.Scanned != 100 {
			t.Fatalf("resumed rotate: %+v %v", mid, err)
		}
		rep, err = s.Rotate(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Done+mid.Done != 130 || rep.Plaintext != 0 || rep.Undecryptable != 1 {
			t.Fatalf("rotate report %+v (resumed run did %d)", rep, mid.Done)
		}
		checkAll(t, s, ids, want)
		// Python-compatible: the ring of only the new key opens every row.
		strict := New(db, mustRing(t, k1), &Options{Table: table})
		checkAll(t, strict, ids, want)
		again, err := s.Rotate(ctx, nil)
		if err != nil || again.Done != 0 || again.AlreadyCurrent != 290 {
			t.Fatalf("second rotate %+v %v", again, err)
		}
	})
}

// TestCompareAndSwapNeverOverwrites makes a write land between Rotate's read
// and its update: the row keeps the concurrent write and counts as skipped.
func TestCompareAndSwapNeverOverwrites(t *testing.T) {
	forEachDB(t, func(t *testing.T, db *sql.DB, d Dialect) {
		ctx := context.Background()
		k1, k2 := mustKey(t), mustKey(t)
		s := newTestStore(t, db, mustRing(t, k1, k2), nil)
		ids := fillRows(t, db, d, s.opts.Table, mustRing(t, k2), []string{"sk-a", "sk-b", "sk-c"})
		testHookBeforeApply = func(int) {
			if err := s.Update(ctx, ids[1], "sk-b-new", time.Time{}); err != nil {
				t.Error(err)
			}
			if err := s.Delete(ctx, ids[2]); err != nil {
				t.Error(err)
			}
		}
		defer func() { testHookBeforeApply = nil }()
		rep, err := s.Rotate(ctx, nil)
		testHookBeforeApply = nil
		if err != nil || rep.Done != 1 || rep.Skipped != 2 {
			t.Fatalf("report %+v %v: want 1 done, 2 skipped", rep, err)
		}
		checkAll(t, s, ids[:2], []string{"sk-a", "sk-b-new"})
	})
}

// TestConcurrentRotations runs two rotations at once, each with its own
// connection pool (two processes, as far as the database can tell), while a
// writer updates rows: every row ends under the primary with its latest value.
func TestConcurrentRotations(t *testing.T) {
	forEachDB(t, func(t *testing.T, db *sql.DB, d Dialect) {
		ctx := context.Background()
		k1, k2 := mustKey(t), mustKey(t)
		ring := mustRing(t, k1, k2)
		s := newTestStore(t, db, ring, nil)
		n := 1500
		if testing.Short() {
			n = 500
		}
		want := makeValues(n, "conc")
		ids := fillRows(t, db, d, s.opts.Table, mustRing(t, k2), want)

		var db2 *sql.DB
		if d == SQLite {
			var err error
			db2, err = sql.Open("sqlite", dbFile(t, db))
			if err != nil {
				t.Fatal(err)
			}
			defer db2.Close()
		} else {
			db2 = openTestDB(t, d)
		}
		s2 := New(db2, ring, &Options{Table: s.opts.Table})
		var wg sync.WaitGroup
		reps := make([]Report, 2)
		errs := make([]error, 3)
		for i, st := range []*Store{s, s2} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				reps[i], errs[i] = st.Rotate(ctx, &WalkOptions{BatchSize: 100})
			}()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < n; i += 37 {
				want[i] = want[i] + "-updated"
				if err := s.Update(ctx, ids[i], want[i], time.Time{}); err != nil {
					errs[2] = err
					return
				}
			}
		}()
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		if done := reps[0].Done + reps[1].Done; done > n || reps[0].Scanned != n || reps[1].Scanned != n {
			t.Fatalf("reports %+v %+v", reps[0], reps[1])
		}
		checkAll(t, s, ids, want)
	})
}

// dbFile returns the DSN of the SQLite file behind db.
func dbFile(t testing.TB, db *sql.DB) string {
	var seq int
	var name, file string
	if err := db.QueryRow("PRAGMA database_list").Scan(&seq, &name, &file); err != nil {
		t.Fatal(err)
	}
	return "file:" + file + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)"
}

const (
	crashEnv     = "FERNETSTORE_CRASH_CHILD_DB"
	crashGateEnv = "FERNETSTORE_CRASH_CHILD_GATED"
	crashBatch   = 200
)

// TestRotateCrashChild is the child of TestRotateCrash: it rotates the
// table and reports each batch on stdout, until its parent kills it. Gated,
// it waits after each batch's report for a byte on stdin, so that it never
// runs more than one batch ahead of the parent (which reads its reports
// late on a busy machine).
func TestRotateCrashChild(t *testing.T) {
	path := os.Getenv(crashEnv)
	if path == "" {
		t.Skip("run by TestRotateCrash")
	}
	ring, err := KeyRingFromEnv()
	if err != nil {
		t.Fatal(err)
	}
	db, err := OpenDB("sqlite:" + path)
	if err != nil {
		t.Fatal(err)
	}
	gate := os.Getenv(crashGateEnv) == "1"
	in := bufio.NewReader(os.Stdin)
	s := New(db, ring, &Options{Table: "api_keys"})
	fmt.Println("started")
	_, err = s.Rotate(context.Background(), &WalkOptions{BatchSize: crashBatch, Progress: func(r Report) {
		fmt.Printf("batch %d\n", r.Scanned)
		if gate {
			if _, err := in.ReadByte(); err != nil {
				gate = false // the parent closed stdin: run free
			}
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	fmt.Println("finished")
}

// TestRotateCrash rotates a table in a child process, killing it with
// SIGKILL several times at random points of the rotation, then lets two
// processes finish it at once, then reruns it: every row decrypts to its
// original value under the new key, none lost, and each kill left the batch
// it interrupted either wholly written or not at all.
//
// The parent paces the child (see TestRotateCrashChild): it lets the child
// start the batch after the one that passes a random row, then kills it
// after a random delay of up to about one batch's work, so the kill lands
// anywhere in that batch (reading, re-encrypting, writing, committing) or
// just after its commit, and always while rows are left to rotate: a kill
// can no longer miss because the child outran the parent, which made the
// test fail in -short mode on a busy machine. The rows to interrupt are
// shared out so that every round has some left. -short only makes the
// table smaller and the kills fewer.
func TestRotateCrash(t *testing.T) {
	n, kills := 20000, 5
	if testing.Short() {
		n, kills = 4000, 3
	}
	ctx := context.Background()
	k1, k2 := mustKey(t), mustKey(t)
	path := filepath.Join(t.TempDir(), "crash.db")
	db, err := OpenDB("sqlite:" + path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	s := New(db, mustRing(t, k1, k2), nil)
	if err := s.CreateSchema(ctx); err != nil {
		t.Fatal(err)
	}
	want := makeValues(n, "crash")
	ids := fillRows(t, db, SQLite, "api_keys", mustRing(t, k2), want)
	childEnv := append(os.Environ(), crashEnv+"="+path, EnvKey+"="+k1, EnvPreviousKeys+"="+k2)

	rng := mrand.New(mrand.NewPCG(uint64(time.Now().UnixNano()), 1))
	var rewriteTime time.Duration // total time of the batches seen rewriting rows
	rewrites := 0
	remaining := n // rows under the old key: the last ones of the walk
	rolledBack, committed := 0, 0
	for round := 0; round < kills; round++ {
		done := n - remaining
		// The child runs at most two batches past the trigger row (the one
		// that reaches it, and the one it is let into), so each round keeps
		// that margin for itself and for every round after it.
		roundsLeft := kills - round
		span := (remaining - 2*crashBatch*roundsLeft) / roundsLeft
		if span < 1 {
			t.Fatalf("round %d: %d rows left for %d kills: the table is too small for the kills", round, remaining, roundsLeft)
		}
		killAt := done + rng.IntN(span)

		cmd := exec.Command(os.Args[0], "-test.run=^TestRotateCrashChild$", "-test.v")
		// Keys go through the environment, never the command line.
		cmd.Env = append(childEnv, crashGateEnv+"=1")
		stdin, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(out)
		trigger, finished := -1, false
		last := time.Now()
		for sc.Scan() {
			line := sc.Text()
			if line == "finished" {
				finished = true
			}
			v, ok := strings.CutPrefix(line, "batch ")
			if !ok {
				continue
			}
			scanned, _ := strconv.Atoi(v)
			now := time.Now()
			if scanned > done { // this batch rewrote rows, not only skipped them
				rewriteTime += now.Sub(last)
				rewrites++
			}
			last = now
			// Let the child into its next batch.
			if _, err := stdin.Write([]byte{1}); err != nil {
				break
			}
			if scanned >= killAt {
				trigger = scanned
				var delay time.Duration
				if rewrites > 0 {
					delay = time.Duration(rng.Int64N(int64(rewriteTime/time.Duration(rewrites))*5/4 + 1))
				}
				time.Sleep(delay)
				cmd.Process.Signal(syscall.SIGKILL)
				break
			}
		}
		cmd.Process.Kill()
		for sc.Scan() { // whatever the child printed before it died
		}
		stdin.Close()
		cmd.Wait()
		if trigger < 0 {
			t.Fatalf("round %d: the child ended (finished=%v) before reaching row %d", round, finished, killAt)
		}
		var onOld int
		st, err := s.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range st {
			if e.State == StateOldKey {
				onOld++
			}
			if e.State == StateUndecryptable || e.State == StatePlaintext {
				t.Fatalf("after a kill, row %s is %s", e.ID, e.State)
			}
		}
		// Rows up to the trigger were committed before the child reported
		// them; the batch it was let into is one transaction, so a kill
		// leaves all of it rotated or none.
		switch onOld {
		case n - trigger:
			rolledBack++
		case n - trigger - crashBatch:
			committed++
		default:
			t.Fatalf("round %d: killed in the batch after row %d, %d rows are under the old key: want %d (batch rolled back) or %d (batch committed)",
				round, trigger, onOld, n-trigger, n-trigger-crashBatch)
		}
		if onOld == 0 || onOld == n {
			t.Fatalf("round %d: the kill did not land mid-rotation (%d rows under the old key)", round, onOld)
		}
		t.Logf("round %d: killed in the batch after row %d; %d rows still under the old key", round, trigger, onOld)
		remaining = onOld
	}
	t.Logf("%d kills: %d rolled back their batch, %d landed after its commit", kills, rolledBack, committed)
	// Two processes at once finish what the kills left: both must succeed
	// (the busy timeout makes one wait for the other's transaction).
	var children [2]*exec.Cmd
	for i := range children {
		children[i] = exec.Command(os.Args[0], "-test.run=^TestRotateCrashChild$")
		children[i].Env = childEnv
		if err := children[i].Start(); err != nil {
			t.Fatal(err)
		}
	}
	for i, c := range children {
		if err := c.Wait(); err != nil {
			t.Fatalf("concurrent rotation process %d: %v", i, err)
		}
	}
	rep, err := s.Rotate(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("rerun: %+v", rep)
	if rep.Scanned != n || rep.Undecryptable != 0 || rep.Done != 0 || rep.AlreadyCurrent != n {
		t.Fatalf("rerun report %+v", rep)
	}
	checkAll(t, New(db, mustRing(t, k1), nil), ids, want)
	var count int
	db.QueryRow("SELECT count(*) FROM api_keys").Scan(&count)
	if count != n {
		t.Fatalf("%d rows after the crashes, want %d", count, n)
	}
	_ = secrets.Redacted
}

// TestResumeAfterFailedBatch makes the second batch's write fail (a SQLite
// trigger that aborts the update of one row): the report's Position must
// not point past the unwritten batch, so resuming from it leaves no row
// plaintext.
func TestResumeAfterFailedBatch(t *testing.T) {
	db := openTestDB(t, SQLite)
	ctx := context.Background()
	ring := mustRing(t, mustKey(t))
	s := newTestStore(t, db, ring, &Options{AllowPlaintext: true})
	table := s.opts.Table
	plain := makeValues(30, "resume")
	ids := fillRows(t, db, SQLite, table, nil, plain)
	if _, err := db.Exec(fmt.Sprintf(`CREATE TRIGGER kw_fail BEFORE UPDATE ON %s WHEN OLD.id = %s BEGIN SELECT RAISE(ABORT, 'injected write failure'); END`, table, ids[14])); err != nil {
		t.Fatal(err)
	}
	rep, err := s.Migrate(ctx, &WalkOptions{BatchSize: 10})
	if err == nil {
		t.Fatalf("migrate with a failing batch succeeded: %+v", rep)
	}
	if want := ids[9]; rep.Position != want {
		t.Fatalf("Position after the failed second batch = %s, want %s (end of the first, committed batch)", rep.Position, want)
	}
	if _, err := db.Exec(`DROP TRIGGER kw_fail`); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Migrate(ctx, &WalkOptions{BatchSize: 10, After: rep.Position}); err != nil {
		t.Fatal(err)
	}
	// A store outside migration mode refuses any row still plaintext.
	checkAll(t, New(db, ring, &Options{Table: table}), ids, plain)
}

// TestCompareAndSwapIsBinary makes concurrent writes that differ from the
// value Migrate read only in case, or only by a trailing space, on tables
// whose value column compares loosely (MySQL/MariaDB utf8mb4_general_ci: case
// and trailing spaces; MariaDB's utf8mb4_bin, the default schema's: trailing
// spaces; SQLite COLLATE NOCASE: case): both rows are Skipped, keeping the
// concurrent write, never overwritten.
func TestCompareAndSwapIsBinary(t *testing.T) {
	forEachDB(t, func(t *testing.T, db *sql.DB, d Dialect) {
		if d != MySQL {
			casIsBinary(t, db, d, "")
			return
		}
		for _, coll := range []string{"utf8mb4_general_ci", "utf8mb4_bin"} {
			t.Run(coll, func(t *testing.T) { casIsBinary(t, db, d, coll) })
		}
	})
}

func casIsBinary(t *testing.T, db *sql.DB, d Dialect, collation string) {
	{
		ctx := context.Background()
		table := "kw_test_ci_" + randHex(6)
		switch d {
		case SQLite:
			if _, err := db.Exec(`CREATE TABLE ` + table + ` (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL DEFAULT '',
				provider TEXT NOT NULL DEFAULT '', api_key TEXT COLLATE NOCASE NOT NULL, expires_at TIMESTAMP NULL,
				created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP)`); err != nil {
				t.Fatal(err)
			}
		case MySQL:
			if _, err := db.Exec("CREATE TABLE " + table + ` (id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
				name VARCHAR(255) NOT NULL DEFAULT '', provider VARCHAR(255) NOT NULL DEFAULT '',
				api_key MEDIUMTEXT CHARACTER SET utf8mb4 COLLATE ` + collation + ` NOT NULL,
				expires_at DATETIME(6) NULL, created_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)) DEFAULT CHARSET=utf8mb4`); err != nil {
				t.Fatal(err)
			}
		}
		s := newTestStore(t, db, mustRing(t, mustKey(t)), &Options{Table: table, AllowPlaintext: true})
		plain := makeValues(3, "ci")
		ids := fillRows(t, db, d, table, nil, plain)
		concurrent := []string{strings.ToUpper(plain[0]), plain[1] + " "}
		upd := "UPDATE " + table + " SET api_key = ? WHERE id = ?"
		if d == Postgres {
			upd = "UPDATE " + table + " SET api_key = $1 WHERE id = $2"
		}
		testHookBeforeApply = func(int) {
			for i, v := range concurrent {
				if _, err := db.Exec(upd, v, ids[i]); err != nil {
					t.Error(err)
				}
			}
		}
		defer func() { testHookBeforeApply = nil }()
		rep, err := s.Migrate(ctx, nil)
		testHookBeforeApply = nil
		if err != nil || rep.Done != 1 || rep.Skipped != 2 {
			t.Fatalf("report %+v %v: want 1 done, 2 skipped", rep, err)
		}
		sel := "SELECT api_key FROM " + table + " WHERE id = ?"
		if d == Postgres {
			sel = "SELECT api_key FROM " + table + " WHERE id = $1"
		}
		for i, want := range concurrent {
			var got string
			if err := db.QueryRow(sel, ids[i]).Scan(&got); err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Fatalf("row %s: the concurrent write (differing only in case or a trailing space) was overwritten", ids[i])
			}
		}
	}
}
