package fernetstore

import (
	"context"
	"database/sql"
	"fmt"
	"testing"
	"time"
)

// BenchmarkNotify measures what announcing a change adds to a write: a put
// (one row) and a rotation batch (500 rows, one transaction), with the
// announcement ("on") and without it ("off") on the same server in the same
// run. PostgreSQL "on" is keyward's own pg_notify in the write's statement
// (no trigger); MariaDB and SQLite "on" are the change-log triggers that
// keyward init --notify installs, which is how they announce. Compare with
// benchstat (see BENCHMARKS.md).
func BenchmarkNotify(b *testing.B) {
	for _, d := range allDialects {
		for _, on := range []bool{false, true} {
			mode := map[bool]string{false: "off", true: "on"}[on]
			b.Run(fmt.Sprintf("%s/put/mode=%s", d, mode), func(b *testing.B) {
				s := notifyBenchStore(b, d, on)
				ctx := context.Background()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if _, err := s.Put(ctx, "bench", "anthropic", "sk-ant-bench-value", time.Time{}); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run(fmt.Sprintf("%s/rotate500/mode=%s", d, mode), func(b *testing.B) {
				k1, k2 := mustKey(b), mustKey(b)
				s := notifyBenchStore(b, d, on, k1)
				ctx := context.Background()
				for i := range 500 {
					if _, err := s.Put(ctx, fmt.Sprint("r", i), "openai", "sk-rotate-bench", time.Time{}); err != nil {
						b.Fatal(err)
					}
				}
				// Two stores whose primaries differ: each rotation rewrites
				// every row the other wrote.
				to := []*Store{New(s.db(b), mustRing(b, k2, k1), &s.opts), New(s.db(b), mustRing(b, k1, k2), &s.opts)}
				for _, x := range to {
					defer x.Close()
					setNotify(b, x, d, on)
				}
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					rep, err := to[i%2].Rotate(ctx, &WalkOptions{BatchSize: 500})
					if err != nil || rep.Done != 500 {
						b.Fatalf("rotate: %+v %v", rep, err)
					}
				}
			})
		}
	}
}

func notifyBenchStore(b *testing.B, d Dialect, on bool, key ...string) *Store {
	b.Helper()
	if len(key) == 0 {
		key = []string{mustKey(b)}
	}
	db := openTestDB(b, d)
	s := newTestStore(b, db, mustRing(b, key[0]), nil)
	if on && d != Postgres {
		if err := s.InstallTriggers(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
	setNotify(b, s, d, on)
	return s
}

// setNotify turns PostgreSQL's own announcement on or off on s.
func setNotify(b *testing.B, s *Store, d Dialect, on bool) {
	b.Helper()
	if d != Postgres {
		return
	}
	base, sc, err := s.schema(context.Background(), "bench")
	if err != nil {
		b.Fatal(err)
	}
	sc.pgNotify = on
	buildQueries(base.d, sc)
}

func (s *Store) db(b *testing.B) *sql.DB {
	db, err := s.DB()
	if err != nil {
		b.Fatal(err)
	}
	return db
}
