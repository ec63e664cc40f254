package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/keyward/secrets/fernetstore"
	"github.com/keyward/secrets/internal/testenv"
)

// TestInitNotifySQLite: init --notify installs the change log and its
// triggers, idempotently, and a row the CLI then updates is in the log.
func TestInitNotifySQLite(t *testing.T) {
	url := "sqlite:" + filepath.Join(t.TempDir(), "k.db")
	env := map[string]string{"DATABASE_URL": url, "ENCRYPTION_KEY": testKey(t)}
	for range 2 {
		code, out, stderr := runInProcess(env, "", "init", "--notify")
		if code != exitOK || !strings.Contains(out, "change triggers of api_keys installed") {
			t.Fatalf("init --notify: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, stderr)
		}
	}
	code, id, stderr := runInProcess(env, "sk-ant-notify-cli-1", "put", "--name", "n", "--provider", "p")
	if code != exitOK {
		t.Fatalf("put: exit %d\n%s", code, stderr)
	}
	id = strings.TrimSpace(id)
	if code, _, stderr := runInProcess(env, "sk-ant-notify-cli-2", "update", id); code != exitOK {
		t.Fatalf("update: exit %d\n%s", code, stderr)
	}
	db := openTestDB(t, url)
	var n int
	if err := db.QueryRow("SELECT count(*) FROM "+fernetstore.ChangeLogTable+" WHERE tbl = 'api_keys' AND id = ?", id).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Fatalf("the change log holds %d changes of row %s, want 2 (put, update)", n, id)
	}
}

// TestUpdateNotifiesPostgres: keyward update NOTIFYs the row's id when it
// commits, with or without the trigger init --notify installs.
func TestUpdateNotifiesPostgres(t *testing.T) {
	url := testenv.PostgresDSN(t)
	table := uniqueTable(t)
	db := openTestDB(t, url)
	t.Cleanup(func() {
		db.Exec("DROP TABLE IF EXISTS " + table)
		db.Exec("DROP FUNCTION IF EXISTS keyward_" + table + "_notify()")
	})
	env := map[string]string{"DATABASE_URL": url, "ENCRYPTION_KEY": testKey(t)}
	if code, _, stderr := runInProcess(env, "", "--table", table, "init"); code != exitOK {
		t.Fatalf("init: exit %d\n%s", code, stderr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{fernetstore.Channel("public." + table)}.Sanitize()); err != nil {
		t.Fatal(err)
	}
	code, id, stderr := runInProcess(env, "sk-ant-pgnotify-1", "--table", table, "put", "--name", "n", "--provider", "p")
	if code != exitOK {
		t.Fatalf("put: exit %d\n%s", code, stderr)
	}
	id = strings.TrimSpace(id)
	expect := func(what string) {
		t.Helper()
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			t.Fatalf("%s: no notification: %v", what, err)
		}
		if n.Payload != "["+id+"]" {
			t.Fatalf("%s: payload %q, want [%s]", what, n.Payload, id)
		}
	}
	expect("put")
	if code, _, stderr := runInProcess(env, "sk-ant-pgnotify-2", "--table", table, "update", id); code != exitOK {
		t.Fatalf("update: exit %d\n%s", code, stderr)
	}
	expect("update")
	if code, _, stderr := runInProcess(env, "", "--table", table, "init", "--notify"); code != exitOK {
		t.Fatalf("init --notify: exit %d\n%s", code, stderr)
	}
	if code, _, stderr := runInProcess(env, "sk-ant-pgnotify-3", "--table", table, "update", id); code != exitOK {
		t.Fatalf("update: exit %d\n%s", code, stderr)
	}
	expect("update with the trigger")
	// One notification per write: the trigger's, not keyward's as well.
	short, stop := context.WithTimeout(ctx, 300*time.Millisecond)
	defer stop()
	if n, err := conn.WaitForNotification(short); err == nil {
		t.Fatalf("a second notification for one update: %q", n.Payload)
	}
}
