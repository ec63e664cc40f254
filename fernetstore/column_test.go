package fernetstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"

	secrets "github.com/keyward/secrets"
)

var testColumnRing atomic.Pointer[KeyRing]

type testKeys struct{}

func (testKeys) KeyRing() (*KeyRing, error) { return testColumnRing.Load(), nil }

type bot struct {
	ID     int64
	Name   string
	APIKey Encrypted[testKeys]
}

func TestEncryptedColumn(t *testing.T) {
	k1, k2 := mustKey(t), mustKey(t)
	testColumnRing.Store(mustRing(t, k2))
	db := openTestDB(t, SQLite)
	ctx := context.Background()
	if _, err := db.Exec(`CREATE TABLE bots (id INTEGER PRIMARY KEY, name TEXT, api_key TEXT)`); err != nil {
		t.Fatal(err)
	}
	secret := "sk-ant-test-column-" + randHex(8)
	b := bot{Name: "a", APIKey: NewEncrypted[testKeys](secret)}
	if _, err := db.ExecContext(ctx, `INSERT INTO bots (name, api_key) VALUES (?, ?)`, b.Name, b.APIKey); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, `INSERT INTO bots (name, api_key) VALUES ('null', ?)`, Encrypted[testKeys]{}); err != nil {
		t.Fatal(err)
	}
	var stored string
	db.QueryRow(`SELECT api_key FROM bots WHERE id = 1`).Scan(&stored)
	if strings.Contains(stored, secret) || Classify(stored) != KindToken {
		t.Fatal("the column was not stored as a Fernet token")
	}

	// Rotate the ring: the column still reads, with the old key as previous.
	testColumnRing.Store(mustRing(t, k1, k2))
	var got bot
	if err := db.QueryRowContext(ctx, `SELECT id, name, api_key FROM bots WHERE id = 1`).Scan(&got.ID, &got.Name, &got.APIKey); err != nil {
		t.Fatal(err)
	}
	if got.APIKey.Reveal() != secret || !got.APIKey.Valid() {
		t.Fatal("the column read back a different value")
	}
	var null Encrypted[testKeys]
	if err := db.QueryRow(`SELECT api_key FROM bots WHERE id = 2`).Scan(&null); err != nil || null.Valid() {
		t.Fatalf("NULL column: %v valid=%v", err, null.Valid())
	}

	// Plaintext and tokens under unknown keys are errors, never plaintext.
	db.Exec(`INSERT INTO bots (name, api_key) VALUES ('plain', 'legacy-plain'), ('other', ?)`, mustEncrypt(t, mustRing(t, mustKey(t)), "x"))
	for _, id := range []int{3, 4} {
		var e Encrypted[testKeys]
		err := db.QueryRow(`SELECT api_key FROM bots WHERE id = ?`, id).Scan(&e)
		if !errors.Is(err, secrets.ErrUndecryptable) || e.Reveal() != "" {
			t.Fatalf("row %d: %v", id, err)
		}
	}

	// Printing never shows the value.
	var out strings.Builder
	fmt.Fprintf(&out, "%v %+v %#v %s %q %x %d", got, got.APIKey, got.APIKey, got.APIKey, got.APIKey, got.APIKey, got.APIKey)
	// Held in an unexported field, where fmt cannot call its methods.
	hidden := struct {
		name string
		key  Encrypted[testKeys]
	}{"bot", got.APIKey}
	fmt.Fprintf(&out, "%v %+v", hidden, &hidden)
	slog.New(slog.NewTextHandler(&out, nil)).Info("bot", "hidden", hidden)
	j, _ := json.Marshal(got)
	out.Write(j)
	slog.New(slog.NewTextHandler(&out, nil)).Info("bot", "key", got.APIKey, "bot", got)
	if strings.Contains(out.String(), secret) || !strings.Contains(out.String(), secrets.Redacted) {
		t.Fatalf("printed output holds the value or no redaction")
	}
}

func TestEncryptedColumnWithoutRing(t *testing.T) {
	testColumnRing.Store(nil)
	if _, err := NewEncrypted[testKeys]("x").Value(); err == nil {
		t.Fatal("Value without a ring succeeded")
	}
}
