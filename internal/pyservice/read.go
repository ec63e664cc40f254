package pyservice

import (
	"database/sql"
	"fmt"
	"strings"
	"testing"
	"time"
)

// Read is how the Python service read one row. It holds no key:
// CheckPythonReads compares keys itself.
type Read struct {
	// Table and ID name the row.
	Table, ID string
	// Source is where the key came from: "token" (decrypted), "plaintext",
	// "env" or "secret"; for a linked bot, that of the api_keys row it
	// follows. "" when Err is set.
	Source string
	// KeyIndex is, for a token, the position in [EncryptionKey,
	// PreviousKeys...] of the key that opens it (0 after a rotation);
	// otherwise -1.
	KeyIndex int
	// Linked is the api_keys id a bot's api_key_id led to.
	Linked string
	// Expired says the row (for a linked bot, its api_keys row) is past its
	// expires_at.
	Expired bool
	// Err is why the service found no key, by exception type and a message
	// that names ids, never values; "" when it found one.
	Err string

	key *string
}

// pyRead is one row of fixture.py read's output.
type pyRead struct {
	ID       string  `json:"id"`
	Key      *string `json:"key"`
	Source   string  `json:"source"`
	KeyIndex int     `json:"key_index"`
	Expired  bool    `json:"expired"`
	Linked   string  `json:"linked"`
	Error    string  `json:"error"`
}

// ReadAsPython runs the service's key selection (python/service.py) over
// every row of api_keys and bots, with the fixture's EncryptionKey,
// PreviousKeys, Vars and moto, and returns what it made of each row, in
// table order. On SQLite Python reads the file with sqlite3, as pysqlite
// does; on PostgreSQL and MariaDB Go selects the rows (and each bot's
// api_keys row, with the database's own id comparison) and hands them to
// Python as psycopg2 or pymysql would return them. Most tests want
// CheckPythonReads.
func ReadAsPython(t testing.TB, f *Fixture) []Read {
	t.Helper()
	requirePython(t)
	var input map[string]any
	if f.Dialect == SQLite {
		input = map[string]any{"db": f.Path}
	} else {
		input = f.selectRows(t)
	}
	var out struct {
		APIKeys []pyRead `json:"api_keys"`
		Bots    []pyRead `json:"bots"`
	}
	f.runPython(t, "read", input, &out)
	var reads []Read
	for _, table := range []struct {
		name string
		rows []pyRead
	}{{TableAPIKeys, out.APIKeys}, {TableBots, out.Bots}} {
		for _, r := range table.rows {
			reads = append(reads, Read{Table: table.name, ID: r.ID, Source: r.Source, KeyIndex: r.KeyIndex,
				Linked: r.Linked, Expired: r.Expired, Err: f.scrub(r.Error), key: r.Key})
		}
	}
	return reads
}

// CheckPythonReads fails t (t.Errorf, one line per row) unless the Python
// service, reading the database as it is now (ReadAsPython), finds for every
// row in f.APIKeys and f.Bots exactly the key the fixture expects, and the
// same expiry: a KindEmpty row must still give NoKeyConfigured, a row must
// still exist. Rows the fixture does not list are not checked (they are in
// the returned reads). It returns the reads, for further checks such as
// "every token opens with the primary key" after a rotation. Messages name
// rows by table, id and kind, never by a value.
func CheckPythonReads(t testing.TB, f *Fixture) []Read {
	t.Helper()
	reads := ReadAsPython(t, f)
	got := map[string]Read{}
	for _, r := range reads {
		got[r.Table+"/"+r.ID] = r
	}
	for _, want := range append(append([]Row(nil), f.APIKeys...), f.Bots...) {
		r, ok := got[want.Table+"/"+want.ID]
		switch {
		case !ok:
			t.Errorf("pyservice: %s: the row is gone; the Python service cannot find it", want)
		case want.Kind == KindEmpty:
			if r.key != nil || !strings.HasPrefix(r.Err, "NoKeyConfigured") {
				t.Errorf("pyservice: %s: the Python service finds %s, want no key configured", want, describeRead(r))
			}
		case r.Err != "":
			t.Errorf("pyservice: %s: the Python service cannot read it: %s", want, r.Err)
		case r.key == nil || *r.key != want.Key:
			n := 0
			if r.key != nil {
				n = len(*r.key)
			}
			t.Errorf("pyservice: %s: the Python service reads a different key (%d bytes from %s, want %d bytes)",
				want, n, r.Source, len(want.Key))
		case r.Expired != want.Expired:
			t.Errorf("pyservice: %s: the Python service finds expired=%v, want %v", want, r.Expired, want.Expired)
		case want.APIKeyID != "" && r.Linked != want.APIKeyID:
			t.Errorf("pyservice: %s: the bot now follows api_keys row %q", want, r.Linked)
		}
	}
	return reads
}

func describeRead(r Read) string {
	if r.Err != "" {
		return "an error (" + r.Err + ")"
	}
	return "a key (from " + r.Source + ")"
}

// selectRows reads both tables the way the service's ORM loads them through
// psycopg2 or pymysql: text as str, NULL as None, DateTime as a naive
// datetime (sent as SQLAlchemy's SQLite text form, which Python parses with
// datetime.fromisoformat). Each bot's api_keys row is looked up with
// WHERE id = ?, as session.get does, so the database's own comparison (a
// MariaDB collation) decides which row a bot follows.
func (f *Fixture) selectRows(t testing.TB) map[string]any {
	t.Helper()
	db := f.Open(t)
	apiKeys := f.selectTable(t, db, TableAPIKeys, "")
	bots := f.selectTable(t, db, TableBots, "")
	linked := map[string]any{}
	for _, b := range bots {
		id, _ := b["api_key_id"].(string)
		if id == "" {
			continue
		}
		rows := f.selectTable(t, db, TableAPIKeys, "WHERE id = "+placeholder(f.Dialect, 1), id)
		if len(rows) > 0 {
			linked[b["id"].(string)] = rows[0]
		}
	}
	return map[string]any{"api_keys": apiKeys, "bots": bots, "linked": linked}
}

func (f *Fixture) selectTable(t testing.TB, db *sql.DB, table, where string, args ...any) []map[string]any {
	t.Helper()
	columns := columnsOf(table)
	rows, err := db.Query("SELECT "+strings.Join(columns, ", ")+" FROM "+table+" "+where, args...)
	if err != nil {
		t.Fatalf("pyservice: the Python service cannot select from %s: %s", table, f.scrub(err.Error()))
	}
	defer rows.Close()
	var out []map[string]any
	for rows.Next() {
		dest := make([]any, len(columns))
		for i, c := range columns {
			if c == "expires_at" || c == "created_at" {
				dest[i] = new(sql.NullTime)
			} else {
				dest[i] = new(sql.NullString)
			}
		}
		if err := rows.Scan(dest...); err != nil {
			t.Fatalf("pyservice: the Python service cannot load a %s row: %s", table, f.scrub(err.Error()))
		}
		row := map[string]any{}
		for i, c := range columns {
			switch v := dest[i].(type) {
			case *sql.NullString:
				if v.Valid {
					row[c] = v.String
				} else {
					row[c] = nil
				}
			case *sql.NullTime:
				if v.Valid {
					row[c] = naive(v.Time)
				} else {
					row[c] = nil
				}
			}
		}
		out = append(out, row)
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("pyservice: reading %s: %s", table, f.scrub(err.Error()))
	}
	return out
}

// naive is a TIMESTAMP WITHOUT TIME ZONE or DATETIME value as the Python
// drivers return it: its wall clock, no zone. pgx and go-sql-driver/mysql
// (loc UTC) return those columns as UTC times.
func naive(tm time.Time) string { return tm.Format(pyDatetime) }

// CheckSchemaUnchanged fails t unless api_keys and bots are as Build made
// them: on SQLite the CREATE TABLE text SQLite keeps, elsewhere every
// column's name, type, length, nullability and default, and the tables'
// constraint types. Other tables, indexes and triggers are not looked at.
func CheckSchemaUnchanged(t testing.TB, f *Fixture) {
	t.Helper()
	if now := f.describeSchema(t); now != f.schema {
		t.Errorf("pyservice: the tables api_keys and bots changed since Build:\nwas:\n%s\nnow:\n%s", f.schema, now)
	}
}

func (f *Fixture) describeSchema(t testing.TB) string {
	t.Helper()
	db := f.Open(t)
	var q string
	switch f.Dialect {
	case SQLite:
		q = `SELECT name, sql FROM sqlite_master WHERE type = 'table' AND name IN ('api_keys', 'bots') ORDER BY name`
	case Postgres:
		q = `SELECT table_name, column_name, data_type, COALESCE(character_maximum_length, 0), is_nullable,
			COALESCE(column_default, '') FROM information_schema.columns
			WHERE table_schema = current_schema() AND table_name IN ('api_keys', 'bots')
			UNION ALL
			SELECT table_name, constraint_type, '', count(*), '', '' FROM information_schema.table_constraints
			WHERE table_schema = current_schema() AND table_name IN ('api_keys', 'bots')
			GROUP BY table_name, constraint_type
			ORDER BY 1, 2`
	case MySQL:
		q = `SELECT table_name, column_name, column_type, 0, is_nullable, COALESCE(column_default, '')
			FROM information_schema.columns
			WHERE table_schema = DATABASE() AND table_name IN ('api_keys', 'bots')
			UNION ALL
			SELECT table_name, constraint_type, '', count(*), '', '' FROM information_schema.table_constraints
			WHERE table_schema = DATABASE() AND table_name IN ('api_keys', 'bots')
			GROUP BY table_name, constraint_type
			ORDER BY 1, 2`
	}
	rows, err := db.Query(q)
	if err != nil {
		t.Fatalf("pyservice: describing the tables: %v", err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		t.Fatalf("pyservice: %v", err)
	}
	var b strings.Builder
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatalf("pyservice: %v", err)
		}
		for i, v := range vals {
			if i > 0 {
				b.WriteString(" | ")
			}
			if bs, ok := v.([]byte); ok {
				v = string(bs)
			}
			fmt.Fprint(&b, v)
		}
		b.WriteString("\n")
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("pyservice: %v", err)
	}
	return b.String()
}
