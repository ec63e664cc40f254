package fernetstore

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyward/secrets/internal/testenv"
)

// TestOwnedStoreCloseRacingCalls: a store that owns its database
// (NewFromEnv) closes it in Close, so a call racing Close meets either a
// closed prepared statement or a closed database ("sql: database is
// closed"). Every call of every kind must then fail with the closed store's
// error (the store's or the driver core's: "the fernet backend is
// closed"), never a "database error" that sends an operator after a server
// that is fine, and never with a value.
func TestOwnedStoreCloseRacingCalls(t *testing.T) {
	for _, name := range []string{"sqlite", "postgres", "mysql"} {
		t.Run(name, func(t *testing.T) {
			var dsn string
			switch name {
			case "sqlite":
				dsn = "sqlite:" + filepath.Join(t.TempDir(), "k.db")
			case "postgres":
				dsn = testenv.PostgresDSN(t)
			case "mysql":
				dsn = "mysql://" + testenv.MySQLDSN(t)
			}
			ctx := context.Background()
			table := "kw_test_" + randHex(6)
			t.Cleanup(func() {
				if db, err := OpenDB(dsn); err == nil {
					db.Exec("DROP TABLE " + table)
					db.Close()
				}
			})
			t.Setenv(EnvDatabaseURL, dsn)
			t.Setenv(EnvKey, mustKey(t))
			raceCallsWithClose(t, 20, "sk-owned-close", func(round int) (*Store, []func(i int) error) {
				s := NewFromEnv(&Options{Table: table})
				if _, err := s.Init(ctx); err != nil {
					t.Fatal(err)
				}
				id, err := s.Put(ctx, "a", "p", "sk-owned-close-0", time.Time{})
				if err != nil {
					t.Fatal(err)
				}
				return s, []func(i int) error{
					func(int) error { _, err := s.Resolve(ctx, id); return err },
					func(i int) error { return s.UpdateValue(ctx, id, fmt.Sprint("sk-owned-close-", i)) },
					func(int) error { _, err := s.Put(ctx, "b", "p", "sk-owned-close-put", time.Time{}); return err },
					func(int) error { _, err := s.List(ctx); return err },
					func(int) error { _, err := s.Rotate(ctx, nil); return err },
					func(int) error { _, err := s.Describe(ctx); return err },
				}
			}, func(msg string) bool {
				return (strings.Contains(msg, "the store is closed") || strings.Contains(msg, "the fernet backend is closed")) && !strings.Contains(msg, "database error")
			})
		})
	}
}

// raceCallsWithClose races Close against calls, for up to rounds fresh
// stores from open or until a call fails with an error closed rejects: each
// call runs in a goroutine of its own, up to 200 times until it fails, while
// the store is closed under it. Every rejected error is reported, and so is
// an error that holds a value (every value the calls write starts with
// canary).
func raceCallsWithClose(t *testing.T, rounds int, canary string, open func(round int) (*Store, []func(i int) error), closed func(msg string) bool) {
	t.Helper()
	bad := map[string]int{}
	var mu sync.Mutex
	for round := 0; round < rounds && len(bad) == 0; round++ {
		s, calls := open(round)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for _, call := range calls {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				for i := 0; i < 200; i++ {
					err := call(i)
					if err == nil {
						continue
					}
					msg := err.Error()
					if strings.Contains(msg, canary) {
						t.Errorf("an error shows a value: %v", err)
					}
					if !closed(msg) {
						mu.Lock()
						bad[msg]++
						mu.Unlock()
					}
					return
				}
			}()
		}
		close(start)
		time.Sleep(time.Duration(1+round%5) * time.Millisecond) // let calls run; no duration is asserted
		s.Close()
		wg.Wait()
	}
	for msg, n := range bad {
		t.Errorf("%d calls racing Close failed with %q: not a closed store's error", n, msg)
	}
}

// TestInitRacingSchemaReads: Init creates the table and then reads its
// schema; a schema read another caller began before the table existed (a
// replica's watch starting, a resolve) is shared by Init's read, which then
// failed with "the table api_keys does not exist" right after creating it
// (CI of this stop failed so in the example's first start). Init must
// answer with the table it made.
func TestInitRacingSchemaReads(t *testing.T) {
	forEachDB(t, func(t *testing.T, db *sql.DB, d Dialect) {
		ctx := context.Background()
		for round := 0; round < 30; round++ {
			table := "kw_test_" + randHex(6)
			s := New(db, mustRing(t, mustKey(t)), &Options{Table: table})
			stop := make(chan struct{})
			var wg sync.WaitGroup
			for range 4 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						select {
						case <-stop:
							return
						default:
						}
						s.Describe(ctx) // fails until the table exists
					}
				}()
			}
			time.Sleep(time.Millisecond) // let the readers start; no duration is asserted
			_, err := s.Init(ctx)
			close(stop)
			wg.Wait()
			s.Close()
			db.Exec("DROP TABLE " + table)
			if err != nil {
				t.Fatalf("round %d: Init racing schema reads: %v", round, err)
			}
		}
	})
}
