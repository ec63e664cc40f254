package fernetstore

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	secrets "github.com/keyward/secrets"
	"github.com/keyward/secrets/internal/testenv"
)

// TestMustExistCreatesNoFile: a program that only reads (keyward list,
// check, resolve) opens the database with MustExist; a SQLite file that is
// not there is a configuration error naming it and saying how to fix it,
// and no file appears, neither at the open nor at the query (OpenDB's
// first query used to create an empty database, and with sqlite:///app.db
// at the filesystem root).
func TestMustExistCreatesNoFile(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	ctx := context.Background()
	for _, c := range []struct{ dsn, file, says string }{
		{"sqlite:" + filepath.Join(dir, "a.db"), filepath.Join(dir, "a.db"), filepath.Join(dir, "a.db")},
		{"sqlite:///b.db", filepath.Join(dir, "b.db"), filepath.Join(dir, "b.db") + " (b.db, relative to the working directory)"},
		{"sqlite:///" + filepath.Join(dir, "c.db"), filepath.Join(dir, "c.db"), filepath.Join(dir, "c.db")},
		{"file:d.db?mode=rwc", filepath.Join(dir, "d.db"), filepath.Join(dir, "d.db")},
		{"sqlite3:e.db?_pragma=journal_mode(DELETE)", filepath.Join(dir, "e.db"), filepath.Join(dir, "e.db")},
	} {
		db, err := OpenDBWith(c.dsn, &DBOptions{MustExist: true})
		if err != nil {
			t.Fatalf("%s: %v", c.dsn, err)
		}
		var n int
		err = db.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_master").Scan(&n)
		db.Close()
		if !errors.Is(err, secrets.ErrInvalidRef) || !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s: %v; want ErrInvalidRef and fs.ErrNotExist", c.dsn, err)
		} else {
			for _, says := range []string{"no SQLite database at " + c.says, "check DATABASE_URL", "keyward init creates it"} {
				if !strings.Contains(err.Error(), says) {
					t.Errorf("%s: %q does not say %q", c.dsn, err, says)
				}
			}
		}
		matches, _ := filepath.Glob(c.file + "*")
		if len(matches) != 0 {
			t.Errorf("%s: a read created %v", c.dsn, matches)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("the working directory holds %d files after reads", len(entries))
	}
}

// TestMustExistOpensExisting: a file that exists opens with MustExist as
// with OpenDB, for reads and writes (mode=rw), in WAL mode.
func TestMustExistOpensExisting(t *testing.T) {
	path := filepath.Join(t.TempDir(), "k.db")
	ctx := context.Background()
	db, err := OpenDB("sqlite:" + path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, "CREATE TABLE t (x INTEGER)"); err != nil {
		t.Fatal(err)
	}
	db.Close()
	db, err = OpenDBWith("sqlite:"+path, &DBOptions{MustExist: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, "INSERT INTO t VALUES (1)"); err != nil {
		t.Fatalf("write with MustExist: %v", err)
	}
	var mode string
	if err := db.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil || mode != "wal" {
		t.Errorf("journal_mode %q, %v; want wal", mode, err)
	}
}

// TestMissingDirectory: a SQLite path whose directory does not exist
// cannot be created by any command: a configuration error naming it, with
// or without MustExist (it used to be the driver's "unable to open database
// file", ErrUnavailable to the store, as if a server were down).
func TestMissingDirectory(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nosuchdir", "k.db")
	for _, o := range []*DBOptions{nil, {MustExist: true}} {
		db, err := OpenDBWith("sqlite:"+missing, o)
		if err != nil {
			t.Fatal(err)
		}
		err = db.PingContext(context.Background())
		db.Close()
		if !errors.Is(err, secrets.ErrInvalidRef) || !errors.Is(err, fs.ErrNotExist) ||
			!strings.Contains(err.Error(), missing) || !strings.Contains(err.Error(), "its directory does not exist") {
			t.Errorf("options %+v: %v; want ErrInvalidRef naming %s and its missing directory", o, err, missing)
		}
	}
}

// TestMustExistServers: PostgreSQL and MySQL never create a database on
// connect, so MustExist opens them as OpenDB does.
func TestMustExistServers(t *testing.T) {
	for _, dsn := range []string{testenv.PostgresDSN(t), "mysql://" + testenv.MySQLDSN(t)} {
		db, err := OpenDBWith(dsn, &DBOptions{MustExist: true})
		if err != nil {
			t.Fatal(err)
		}
		err = db.PingContext(context.Background())
		db.Close()
		if err != nil {
			t.Errorf("%v", err)
		}
	}
}
