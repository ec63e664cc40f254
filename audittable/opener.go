package audittable

import (
	"context"
	"log/slog"
	"os"

	secrets "github.com/keyward/secrets"
	"github.com/keyward/secrets/fernetstore"
)

func init() { secrets.RegisterAuditTable(openFromEnv) }

// openFromEnv is "audit = db": the table in DATABASE_URL's database
// (default sqlite:keyward.db), opened with fernetstore.OpenDB (no I/O) and
// created before the first write if missing. The Auditor owns the
// database and closes it on Close; write failures go to slog.Default().
func openFromEnv(_ context.Context, table string) (secrets.Auditor, error) {
	dsn := os.Getenv(fernetstore.EnvDatabaseURL)
	if dsn == "" {
		dsn = fernetstore.DefaultDatabaseURL
	}
	db, err := fernetstore.OpenDB(dsn)
	if err != nil {
		return nil, err // its text never quotes the DSN
	}
	a, err := New(db, &Options{Table: table, CreateTable: true, Logger: slog.Default()})
	if err != nil {
		db.Close()
		return nil, err
	}
	a.ownDB = true
	return a, nil
}
