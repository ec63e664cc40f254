package main

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keyward/secrets/fernetstore"
)

// benchRows is the table size of BenchmarkMigrate.
const benchRows = 5000

// BenchmarkMigrate measures what `keyward migrate` adds to the library's
// Store.Migrate on SQLite: the List before (for the progress total) and the
// List after (the exit-code criterion). "store" is the bare Migrate, the
// baseline; "cli" is run(ctx, "migrate", ...) in process. Each iteration
// migrates benchRows fresh plaintext rows; the refill is untimed.
func BenchmarkMigrate(b *testing.B) {
	key, err := fernetstore.GenerateKey()
	if err != nil {
		b.Fatal(err)
	}
	ring, err := fernetstore.ParseKeyRing(key)
	if err != nil {
		b.Fatal(err)
	}
	for _, mode := range []string{"store", "cli"} {
		b.Run(fmt.Sprintf("mode=%s/rows=%d", mode, benchRows), func(b *testing.B) {
			dbURL := "sqlite:" + filepath.Join(b.TempDir(), "bench.db")
			db, err := fernetstore.OpenDB(dbURL)
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			store := fernetstore.New(db, ring, nil)
			ctx := context.Background()
			if err := store.CreateSchema(ctx); err != nil {
				b.Fatal(err)
			}
			env := map[string]string{"ENCRYPTION_KEY": key}
			b.ResetTimer()
			for b.Loop() {
				b.StopTimer()
				refill(b, db)
				b.StartTimer()
				switch mode {
				case "store":
					rep, err := store.Migrate(ctx, nil)
					if err != nil || rep.Done != benchRows {
						b.Fatalf("migrate: %+v, %v", rep, err)
					}
				case "cli":
					code := run(ctx, []string{"migrate", "--db", dbURL}, strings.NewReader(""), io.Discard, io.Discard,
						func(k string) string { return env[k] })
					if code != 0 {
						b.Fatalf("keyward migrate: exit %d", code)
					}
				}
			}
		})
	}
}

// refill replaces the table's rows with benchRows plaintext rows.
func refill(b *testing.B, db *sql.DB) {
	tx, err := db.Begin()
	if err != nil {
		b.Fatal(err)
	}
	if _, err := tx.Exec("DELETE FROM api_keys"); err != nil {
		b.Fatal(err)
	}
	for i := range benchRows {
		if _, err := tx.Exec("INSERT INTO api_keys (name, provider, api_key) VALUES (?, 'openai', ?)",
			fmt.Sprint("bot-", i), fmt.Sprint("sk-legacy-bench-value-", i)); err != nil {
			b.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		b.Fatal(err)
	}
}
