package fernetstore_test

import (
	"bufio"
	"context"
	"database/sql"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	secrets "github.com/keyward/secrets"
	_ "github.com/keyward/secrets/cache" // the stack's cache decorator
	"github.com/keyward/secrets/fernetstore"
	"github.com/keyward/secrets/internal/testenv"
)

// propagationStack is a replica's stack: a one-hour cache over the store,
// which the stack's watch keeps current.
func propagationStack(t testing.TB, db *sql.DB, ring *fernetstore.KeyRing, table string, poll time.Duration) *secrets.Stack {
	t.Helper()
	store := fernetstore.New(db, ring, &fernetstore.Options{Table: table, PollInterval: poll})
	cfg, err := secrets.ParseConfig("cache = size=1000&ttl=1h")
	if err != nil {
		t.Fatal(err)
	}
	st, err := secrets.OpenConfig(context.Background(), cfg, &secrets.StackOptions{Backends: map[string]secrets.KeyResolver{"db": store}})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// TestPropagationChild is a replica of BenchmarkPropagation, run in a
// process of its own: it resolves db:ID every millisecond through its stack
// and prints "N UNIXNANO" when the value becomes "v-N". It ends when its
// stdin closes.
func TestPropagationChild(t *testing.T) {
	if os.Getenv("KEYWARD_PROPAGATION_CHILD") != "1" {
		t.Skip("a child process of BenchmarkPropagation")
	}
	db, err := fernetstore.OpenDB(os.Getenv("KEYWARD_PROPAGATION_DB"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ring, err := fernetstore.KeyRingFromEnv()
	if err != nil {
		t.Fatal(err)
	}
	poll, _ := time.ParseDuration(os.Getenv("KEYWARD_PROPAGATION_POLL"))
	st := propagationStack(t, db, ring, os.Getenv("KEYWARD_PROPAGATION_TABLE"), poll)
	defer st.Close()
	ref := "db:" + os.Getenv("KEYWARD_PROPAGATION_ID")
	done := make(chan struct{})
	go func() { io.Copy(io.Discard, os.Stdin); close(done) }()
	last := ""
	for {
		select {
		case <-done:
			return
		case <-time.After(time.Millisecond):
		}
		s, err := st.Resolve(context.Background(), ref)
		if err != nil {
			fmt.Printf("error %v\n", err)
			continue
		}
		if v := s.Reveal(); v != last {
			last = v
			fmt.Printf("%s %d\n", strings.TrimPrefix(v, "v-"), time.Now().UnixNano())
		}
	}
}

// BenchmarkPropagation: three processes, each with a one-hour cache over
// one database; this one updates a key, the other two serve it. It reports
// the time from the start of the update to the moment each of the other two
// first serves the new value: p50, p99 and max over
// KEYWARD_PROPAGATION_N updates (default 1000 on PostgreSQL, 100 on
// MariaDB, which polls every DefaultPollInterval), each after a random
// pause below the poll interval. Run it with
// -benchtime=1x (see BENCHMARKS.md).
func BenchmarkPropagation(b *testing.B) {
	for _, c := range []struct {
		name string
		dsn  func(testing.TB) string
		n    int
		// phase: each update waits a random time below it first, so that
		// updates do not fall in step with MariaDB's polls (one just after
		// a poll would wait a whole interval, every time).
		phase time.Duration
	}{
		{"postgres", testenv.PostgresDSN, 1000, 10 * time.Millisecond},
		{"mariadb", func(t testing.TB) string { return "mysql://" + testenv.MySQLDSN(t) }, 100, fernetstore.DefaultPollInterval},
	} {
		b.Run(c.name, func(b *testing.B) {
			n := c.n
			if v, err := strconv.Atoi(os.Getenv("KEYWARD_PROPAGATION_N")); err == nil && v > 0 {
				n = v
			}
			for range b.N {
				lat := propagate(b, c.dsn(b), n, c.phase)
				slices.Sort(lat)
				q := func(p float64) float64 {
					return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))]) / float64(time.Millisecond)
				}
				b.ReportMetric(q(0.50), "p50-ms")
				b.ReportMetric(q(0.99), "p99-ms")
				b.ReportMetric(q(1), "max-ms")
				b.ReportMetric(float64(len(lat)), "samples")
			}
		})
	}
}

func propagate(b *testing.B, dsn string, n int, phase time.Duration) []time.Duration {
	b.Helper()
	ctx := context.Background()
	db, err := fernetstore.OpenDB(dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	if err := db.Ping(); err != nil {
		testenv.Missing(b, "the database", "start it")
	}
	key, _ := fernetstore.GenerateKey()
	ring, _ := fernetstore.ParseKeyRing(key)
	table := fmt.Sprintf("kw_prop_%d", time.Now().UnixNano())
	store := fernetstore.New(db, ring, &fernetstore.Options{Table: table})
	defer store.Close()
	if err := store.CreateSchema(ctx); err != nil {
		b.Fatal(err)
	}
	defer db.Exec("DROP TABLE " + table)
	if err := store.InstallTriggers(ctx); err != nil {
		b.Fatal(err)
	}
	defer db.Exec("DROP FUNCTION IF EXISTS keyward_" + table + "_notify()")
	// The writer's own store reads the table again: with the trigger in,
	// it leaves the NOTIFY to it.
	writer := fernetstore.New(db, ring, &fernetstore.Options{Table: table})
	defer writer.Close()
	id, err := writer.Put(ctx, "prop", "anthropic", "v-0", time.Time{})
	if err != nil {
		b.Fatal(err)
	}
	// The third process's own stack (the writer is a replica too).
	mine := propagationStack(b, db, ring, table, 0)
	defer mine.Close()

	type seen struct {
		child, n int
		at       int64
	}
	events := make(chan seen, 64)
	var wg sync.WaitGroup
	var stdins []io.WriteCloser
	for child := range 2 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestPropagationChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), "KEYWARD_PROPAGATION_CHILD=1", "KEYWARD_PROPAGATION_DB="+dsn,
			"KEYWARD_PROPAGATION_TABLE="+table, "KEYWARD_PROPAGATION_ID="+id, "ENCRYPTION_KEY="+key, "ENCRYPTION_KEY_PREVIOUS=")
		in, _ := cmd.StdinPipe()
		out, _ := cmd.StdoutPipe()
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		stdins = append(stdins, in)
		wg.Add(1)
		go func() {
			defer wg.Done()
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				f := strings.Fields(sc.Text())
				if len(f) != 2 {
					continue
				}
				v, err1 := strconv.Atoi(f[0])
				at, err2 := strconv.ParseInt(f[1], 10, 64)
				if err1 == nil && err2 == nil {
					events <- seen{child, v, at}
				}
			}
			cmd.Wait()
		}()
	}
	defer func() {
		for _, in := range stdins {
			in.Close()
		}
		wg.Wait()
	}()
	wait := func(v int) []int64 {
		got := map[int]int64{}
		deadline := time.After(30 * time.Second)
		for len(got) < 2 {
			select {
			case e := <-events:
				if e.n == v {
					got[e.child] = e.at
				}
			case <-deadline:
				b.Fatalf("the replicas never served v-%d (saw %v)", v, got)
			}
		}
		return []int64{got[0], got[1]}
	}
	wait(0) // both replicas up and serving
	// A watch starts once its store is open (Store.Watch looks every
	// 200ms): let both children's begin before the first update.
	time.Sleep(time.Second)
	var lat []time.Duration
	b.ResetTimer()
	for i := 1; i <= n; i++ {
		time.Sleep(rand.N(phase))
		start := time.Now()
		if err := writer.UpdateValue(ctx, fernetstore.RowRef(id), fmt.Sprintf("v-%d", i)); err != nil {
			b.Fatal(err)
		}
		for _, at := range wait(i) {
			lat = append(lat, time.Duration(at-start.UnixNano()))
		}
	}
	b.StopTimer()
	// The writer's own replica is not timed, but must agree.
	want := fmt.Sprintf("v-%d", n)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		s, err := mine.Resolve(ctx, "db:"+id)
		if err == nil && s.Reveal() == want {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("the writing process's own cache never served %s (err %v)", want, err)
		}
	}
	return lat
}
