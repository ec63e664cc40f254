// Package pyservice is a test fixture: the database of keyward's first users,
// a Python (FastAPI + SQLAlchemy + cryptography) chat service, built verbatim
// on SQLite, PostgreSQL or MariaDB, filled the way that service fills it, and
// read back the way that service reads it.
//
// Build runs the DDL SQLAlchemy's create_all emits for the service's models
// (see DDL) on a database of the test's own: a temporary SQLite file, a
// PostgreSQL schema or a MariaDB database created for the fixture and dropped
// at cleanup, so parallel tests never share tables named api_keys and bots.
// Fill writes the rows with Python: Fernet and MultiFernet tokens from the
// cryptography package, str(uuid.uuid4()) ids, datetime.utcnow() timestamps,
// a secret created with boto3 in moto. On SQLite Python's sqlite3 writes them
// into the file itself, as SQLAlchemy's pysqlite dialect would; on PostgreSQL
// and MariaDB (no Python driver here) Python makes the rows and Go inserts
// them with the values SQLAlchemy would bind. CheckPythonReads runs the
// service's key selection (python/service.py) over every row and fails the
// test unless each gives the key the fixture expects.
//
// Python 3 with cryptography and boto3 and moto_server are needed; when one
// is missing the test skips, saying which, or fails under
// KEYWARD_REQUIRE_SERVERS=1 (testenv.Missing).
//
// The fixture's API keys are canaries ("sk-ant-pyfixture-<random hex>"):
// nothing here prints one, and Canaries lists them so a test can search
// captured output for them.
//
// A test in another package runs a command against the service's database as
// the operator would, then asks the service whether it can still read it:
//
//	f := pyservice.New(t, pyservice.Postgres, nil)
//	cmd := exec.Command(keyward, "migrate")
//	cmd.Env = append(os.Environ(), f.Env()...) // DATABASE_URL, ENCRYPTION_KEY, AWS_*, key_env_var values
//	...
//	pyservice.CheckPythonReads(t, f)
//	pyservice.CheckSchemaUnchanged(t, f)
package pyservice

import (
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/url"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	_ "github.com/jackc/pgx/v5/stdlib" // registers "pgx"
	_ "modernc.org/sqlite"             // registers "sqlite"

	"github.com/keyward/secrets/internal/testenv"
)

// Dialect names the database a Fixture is built on.
type Dialect string

// The dialects, named as fernetstore's dialect= option names them.
const (
	SQLite   Dialect = "sqlite"
	Postgres Dialect = "postgres"
	// MySQL is MySQL or MariaDB; keyward's tests run MariaDB.
	MySQL Dialect = "mysql"
)

// Dialects returns every dialect, for a test that runs on each.
func Dialects() []Dialect { return []Dialect{SQLite, Postgres, MySQL} }

// Kind says how Fill wrote a row, and so how the service finds its key.
type Kind string

// The kinds of rows Fill writes.
const (
	// KindEncrypted: a Fernet(ENCRYPTION_KEY) token in api_key (an api_keys
	// row that expires in a year, or a bot's legacy api_key).
	KindEncrypted Kind = "encrypted"
	// KindPreviousKey: a token made by MultiFernet under the key that is now
	// in ENCRYPTION_KEY_PREVIOUS.
	KindPreviousKey Kind = "previous-key"
	// KindPlaintext: legacy plaintext in api_key.
	KindPlaintext Kind = "plaintext"
	// KindEnv: api_key NULL, key_env_var names the variable with the key.
	KindEnv Kind = "env"
	// KindSecret: api_key NULL, secret_name names an AWS Secrets Manager
	// secret (in moto) holding the key.
	KindSecret Kind = "secret"
	// KindExpired: a Fernet(ENCRYPTION_KEY) token whose expires_at is 30 days
	// in the past. The service refuses it; CheckPythonReads still checks the
	// key it holds, and that it is still expired.
	KindExpired Kind = "expired"
	// KindEmpty: api_key, key_env_var and secret_name all NULL; the service
	// finds no key (NoKeyConfigured).
	KindEmpty Kind = "empty"
	// KindLinked: a bot with api_key_id set and no api_key of its own.
	KindLinked Kind = "linked"
)

// Table names, as the service's models name them.
const (
	TableAPIKeys = "api_keys"
	TableBots    = "bots"
)

// Row is one row Fill wrote, and what the service makes of it.
type Row struct {
	// Table is TableAPIKeys or TableBots.
	Table string
	// ID is the row's id, a str(uuid.uuid4()).
	ID string
	// Kind says how the row was written; it stays as written after a
	// command changes the row (a migrated plaintext row is still
	// KindPlaintext).
	Kind Kind
	// EnvVar is the row's key_env_var (KindEnv).
	EnvVar string
	// SecretName is the row's secret_name (KindSecret).
	SecretName string
	// APIKeyID is a bot's api_key_id (KindLinked).
	APIKeyID string
	// Expired says the row (or, for a linked bot, the row it points to) is
	// past its expires_at.
	Expired bool
	// Key is the API key the service uses for this row, a canary; "" for
	// KindEmpty. String and GoString leave it out.
	Key string
}

// String describes the row without its key.
func (r Row) String() string {
	s := fmt.Sprintf("%s row %s (%s", r.Table, r.ID, r.Kind)
	switch {
	case r.EnvVar != "":
		s += ", env " + r.EnvVar
	case r.SecretName != "":
		s += ", secret " + r.SecretName
	case r.APIKeyID != "":
		s += ", api_key_id " + r.APIKeyID
	}
	if r.Expired && r.Kind != KindExpired {
		s += ", expired"
	}
	return s + ")"
}

// GoString is String, so that %#v prints no key either.
func (r Row) GoString() string { return r.String() }

// Options configures New and Fill. A nil *Options means the defaults.
type Options struct {
	// AWSEndpoint is the moto endpoint the secret_name row's secret is
	// created in (testenv.MotoServer). Empty starts a moto_server for the
	// fixture (about a second); a test package with many fixtures should
	// start one and share it.
	AWSEndpoint string
}

// Fixture is the Python service's database built for one test.
type Fixture struct {
	// Dialect is the database the fixture is on.
	Dialect Dialect
	// DriverName and DSN open the database with database/sql ("sqlite" and
	// the file's path; "pgx" and a URL whose search_path is the fixture's
	// schema; "mysql" and a DSN naming the fixture's database).
	DriverName, DSN string
	// DatabaseURL is the service's DATABASE_URL for the same database, as
	// SQLAlchemy takes it: sqlite:////abs/path/app.db,
	// postgresql+psycopg2://...?sslmode=...&options=-csearch_path%3D<schema>,
	// mysql+pymysql://.../<database>?charset=utf8mb4.
	DatabaseURL string
	// Path is the SQLite file ("" on the other dialects).
	Path string
	// EncryptionKey is the service's ENCRYPTION_KEY and PreviousKeys its
	// ENCRYPTION_KEY_PREVIOUS. CheckPythonReads uses them as they are when
	// it runs: after a rotation, set them to the new ring (NewPrimaryKey).
	EncryptionKey string
	PreviousKeys  []string
	// AWSEndpoint is the moto endpoint that holds the secret_name secret.
	AWSEndpoint string
	// Vars maps each key_env_var to its value. Env includes them.
	Vars map[string]string
	// APIKeys and Bots are the rows Fill wrote, in the order written. A test
	// that adds a row (keyward put) or deletes one appends or removes it
	// here, and CheckPythonReads checks the rows listed.
	APIKeys, Bots []Row

	schema string // the tables' description at Build, for CheckSchemaUnchanged
}

// String describes the fixture without its keys.
func (f *Fixture) String() string {
	return fmt.Sprintf("pyservice.Fixture{%s, %d api_keys rows, %d bots}", f.Dialect, len(f.APIKeys), len(f.Bots))
}

// GoString is String, so that %#v prints no key either.
func (f *Fixture) GoString() string { return f.String() }

// New builds the service's tables on d and fills them: Build, then Fill.
func New(t testing.TB, d Dialect, opts *Options) *Fixture {
	t.Helper()
	f := Build(t, d)
	f.Fill(t, opts)
	return f
}

// Build creates an empty database for the test on d (dropped at t's
// cleanup) and runs the service's DDL on it: on SQLite with Python's sqlite3,
// on PostgreSQL and MariaDB through database/sql. It skips (or fails under
// KEYWARD_REQUIRE_SERVERS=1) when the database, or on SQLite Python, is
// missing.
func Build(t testing.TB, d Dialect) *Fixture {
	t.Helper()
	f := &Fixture{Dialect: d}
	name := "pyservice_" + randomHex(t, 6)
	switch d {
	case SQLite:
		f.DriverName = "sqlite"
		f.Path = filepath.Join(t.TempDir(), "app.db")
		f.DSN = f.Path
		f.DatabaseURL = "sqlite:///" + f.Path // an absolute path: sqlite:////tmp/...
		f.runPython(t, "create", map[string]any{"db": f.Path, "ddl": DDL(SQLite)}, nil)
	case Postgres:
		base := testenv.PostgresDSN(t)
		u, err := url.Parse(base)
		if err != nil || u.Scheme == "" {
			t.Fatalf("pyservice: KEYWARD_TEST_POSTGRES_DSN must be a postgres:// URL")
		}
		admin := open(t, "pgx", base)
		// The schema is dropped before admin is closed: cleanups run last first.
		mustExec(t, admin, "CREATE SCHEMA "+name)
		t.Cleanup(func() { _, _ = admin.Exec("DROP SCHEMA IF EXISTS " + name + " CASCADE") })
		f.DriverName = "pgx"
		q := u.Query()
		q.Set("search_path", name)
		gou := *u
		gou.RawQuery = q.Encode()
		f.DSN = gou.String()
		// libpq (psycopg2) takes no search_path parameter; options does it.
		q = u.Query()
		q.Set("options", "-csearch_path="+name)
		pyu := *u
		pyu.Scheme = "postgresql+psycopg2"
		pyu.RawQuery = q.Encode()
		f.DatabaseURL = pyu.String()
		f.execDDL(t)
	case MySQL:
		base := testenv.MySQLDSN(t)
		cfg, err := mysql.ParseDSN(base)
		if err != nil {
			t.Fatalf("pyservice: KEYWARD_TEST_MYSQL_DSN is not a go-sql-driver DSN")
		}
		admin := open(t, "mysql", base)
		mustExec(t, admin, "CREATE DATABASE "+name)
		t.Cleanup(func() { _, _ = admin.Exec("DROP DATABASE IF EXISTS " + name) })
		cfg.DBName = name
		cfg.ParseTime = true
		f.DriverName = "mysql"
		f.DSN = cfg.FormatDSN()
		user := url.User(cfg.User)
		if cfg.Passwd != "" {
			user = url.UserPassword(cfg.User, cfg.Passwd)
		}
		pyu := url.URL{Scheme: "mysql+pymysql", User: user, Host: cfg.Addr, Path: "/" + name, RawQuery: "charset=utf8mb4"}
		f.DatabaseURL = pyu.String()
		f.execDDL(t)
	default:
		t.Fatalf("pyservice: unknown dialect %q (want sqlite, postgres or mysql)", d)
	}
	f.schema = f.describeSchema(t)
	return f
}

// execDDL runs the dialect's DDL through database/sql, as create_all does
// through psycopg2 or pymysql.
func (f *Fixture) execDDL(t testing.TB) {
	t.Helper()
	db := f.Open(t)
	for _, stmt := range DDL(f.Dialect) {
		mustExec(t, db, stmt)
	}
}

// fillOutput is what fixture.py fill prints.
type fillOutput struct {
	EncryptionKey string            `json:"encryption_key"`
	PreviousKeys  []string          `json:"previous_keys"`
	Env           map[string]string `json:"env"`
	Rows          []struct {
		Table   string             `json:"table"`
		Kind    Kind               `json:"kind"`
		Key     *string            `json:"key"`
		Expired bool               `json:"expired"`
		Values  map[string]*string `json:"values"`
	} `json:"rows"`
}

// Fill writes the service's rows into the fixture's tables with Python (see
// the Kind constants for what each row is): seven api_keys rows, one of each
// kind but KindLinked, and four bots, two linked (to the KindEncrypted and
// the KindSecret rows), one with legacy plaintext and one with a legacy
// token. It sets EncryptionKey, PreviousKeys, AWSEndpoint, Vars, APIKeys and
// Bots. It calls Missing when Python, cryptography, boto3 or moto_server is
// missing.
func (f *Fixture) Fill(t testing.TB, opts *Options) {
	t.Helper()
	if f.EncryptionKey != "" {
		t.Fatalf("pyservice: Fill called twice on one fixture")
	}
	if opts == nil {
		opts = &Options{}
	}
	requirePython(t)
	f.AWSEndpoint = opts.AWSEndpoint
	if f.AWSEndpoint == "" {
		f.AWSEndpoint = testenv.MotoServer(t)
	}
	var out fillOutput
	f.runPython(t, "fill", map[string]any{"db": f.Path}, &out)
	f.EncryptionKey, f.PreviousKeys, f.Vars = out.EncryptionKey, out.PreviousKeys, out.Env
	byID := map[string]*fillRow{}
	for _, r := range out.Rows {
		row := Row{Table: r.Table, Kind: r.Kind, Expired: r.Expired}
		row.ID = deref(r.Values["id"])
		row.EnvVar = deref(r.Values["key_env_var"])
		row.SecretName = deref(r.Values["secret_name"])
		row.APIKeyID = deref(r.Values["api_key_id"])
		row.Key = deref(r.Key)
		byID[row.ID] = &fillRow{values: r.Values}
		if r.Table == TableAPIKeys {
			f.APIKeys = append(f.APIKeys, row)
		} else {
			f.Bots = append(f.Bots, row)
		}
	}
	if f.Dialect == SQLite {
		return // fixture.py wrote them
	}
	db := f.Open(t)
	tx, err := db.Begin()
	if err != nil {
		t.Fatalf("pyservice: %v", err)
	}
	defer func() { _ = tx.Rollback() }()
	// api_keys first: on PostgreSQL and MariaDB the foreign key is enforced.
	for _, table := range []struct {
		name string
		rows []Row
	}{{TableAPIKeys, f.APIKeys}, {TableBots, f.Bots}} {
		columns := columnsOf(table.name)
		stmt := insertSQL(f.Dialect, table.name, columns)
		for _, r := range table.rows {
			args, err := byID[r.ID].args(columns)
			if err != nil {
				t.Fatalf("pyservice: %s: %v", r, err)
			}
			if _, err := tx.Exec(stmt, args...); err != nil {
				t.Fatalf("pyservice: inserting %s: %v", r, err)
			}
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatalf("pyservice: %v", err)
	}
}

// fillRow is one row's column values as fixture.py made them.
type fillRow struct{ values map[string]*string }

// args are the row's values as SQLAlchemy binds them through psycopg2 or
// pymysql: text as strings, NULL as nil, DateTime as a naive datetime, here
// a time.Time in UTC that pgx and go-sql-driver/mysql send as its wall clock.
func (r *fillRow) args(columns []string) ([]any, error) {
	args := make([]any, len(columns))
	for i, c := range columns {
		v := r.values[c]
		switch {
		case v == nil:
			args[i] = nil
		case c == "expires_at" || c == "created_at":
			tm, err := time.Parse(pyDatetime, *v)
			if err != nil {
				return nil, fmt.Errorf("column %s: %v", c, err)
			}
			args[i] = tm
		default:
			args[i] = *v
		}
	}
	return args, nil
}

// pyDatetime is SQLAlchemy's SQLite DATETIME storage format, in which
// fixture.py passes naive UTC datetimes.
const pyDatetime = "2006-01-02 15:04:05.000000"

var (
	apiKeysColumns = []string{"id", "name", "provider", "api_key", "key_env_var", "secret_name", "expires_at", "created_at"}
	botsColumns    = []string{"id", "name", "system_prompt", "model", "api_key_id", "api_key", "created_at"}
)

func columnsOf(table string) []string {
	if table == TableAPIKeys {
		return apiKeysColumns
	}
	return botsColumns
}

// insertSQL is the INSERT SQLAlchemy's ORM emits for a table, with the
// dialect's placeholders.
func insertSQL(d Dialect, table string, columns []string) string {
	ph := make([]string, len(columns))
	for i := range ph {
		ph[i] = placeholder(d, i+1)
	}
	return "INSERT INTO " + table + " (" + strings.Join(columns, ", ") + ") VALUES (" + strings.Join(ph, ", ") + ")"
}

func placeholder(d Dialect, i int) string {
	if d == Postgres {
		return fmt.Sprintf("$%d", i)
	}
	return "?"
}

// Env returns the service's environment as NAME=value lines, sorted:
// DATABASE_URL, ENCRYPTION_KEY, ENCRYPTION_KEY_PREVIOUS, the AWS settings
// for moto (AWS_ENDPOINT_URL, dummy credentials, us-east-1, and config files
// that do not exist, so a developer's profile is never used) and every
// key_env_var. Give it to a keyward command run as the operator would run it
// (cmd.Env = append(os.Environ(), f.Env()...)).
func (f *Fixture) Env() []string {
	m := map[string]string{
		"DATABASE_URL":                f.DatabaseURL,
		"ENCRYPTION_KEY":              f.EncryptionKey,
		"ENCRYPTION_KEY_PREVIOUS":     strings.Join(f.PreviousKeys, ","),
		"AWS_ENDPOINT_URL":            f.AWSEndpoint,
		"AWS_ACCESS_KEY_ID":           "testing",
		"AWS_SECRET_ACCESS_KEY":       "testing",
		"AWS_REGION":                  "us-east-1",
		"AWS_DEFAULT_REGION":          "us-east-1",
		"AWS_CONFIG_FILE":             "/nonexistent/pyservice/aws-config",
		"AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/pyservice/aws-credentials",
	}
	for k, v := range f.Vars {
		m[k] = v
	}
	env := make([]string, 0, len(m))
	for k, v := range m {
		env = append(env, k+"="+v)
	}
	sort.Strings(env)
	return env
}

// Setenv sets every variable of Env with t.Setenv (so not in a parallel
// test), for code under test that reads the process's environment.
func (f *Fixture) Setenv(t testing.TB) {
	t.Helper()
	for _, kv := range f.Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
}

// Canaries returns every value that must never appear in output: each
// row's key and the Fernet keys.
func (f *Fixture) Canaries() []string {
	var c []string
	for _, r := range append(append([]Row(nil), f.APIKeys...), f.Bots...) {
		if r.Key != "" {
			c = append(c, r.Key)
		}
	}
	if f.EncryptionKey != "" {
		c = append(c, f.EncryptionKey)
	}
	return append(c, f.PreviousKeys...)
}

// ByKind returns the first row of table with that kind, or fails t.
func (f *Fixture) ByKind(t testing.TB, table string, k Kind) Row {
	t.Helper()
	rows := f.APIKeys
	if table == TableBots {
		rows = f.Bots
	}
	for _, r := range rows {
		if r.Kind == k {
			return r
		}
	}
	t.Fatalf("pyservice: no %s row of kind %s", table, k)
	return Row{}
}

// NewPrimaryKey makes a new Fernet key (32 random bytes, url-safe base64, as
// Fernet.generate_key() makes them), makes it EncryptionKey and puts the old
// one first in PreviousKeys: the service's ring after an operator rotated
// ENCRYPTION_KEY. It returns the new key.
func (f *Fixture) NewPrimaryKey(t testing.TB) string {
	t.Helper()
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("pyservice: %v", err)
	}
	k := base64.URLEncoding.EncodeToString(b)
	f.PreviousKeys = append([]string{f.EncryptionKey}, f.PreviousKeys...)
	f.EncryptionKey = k
	return k
}

// Open opens the fixture's database with database/sql; it is closed at t's
// cleanup.
func (f *Fixture) Open(t testing.TB) *sql.DB {
	t.Helper()
	return open(t, f.DriverName, f.DSN)
}

func open(t testing.TB, driver, dsn string) *sql.DB {
	t.Helper()
	db, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatalf("pyservice: open %s: %v", driver, err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Ping(); err != nil {
		t.Fatalf("pyservice: %s: %v", driver, err)
	}
	return db
}

func mustExec(t testing.TB, db *sql.DB, stmt string) {
	t.Helper()
	if _, err := db.Exec(stmt); err != nil {
		t.Fatalf("pyservice: %s: %v", strings.TrimSpace(strings.SplitN(strings.TrimSpace(stmt), "\n", 2)[0]), err)
	}
}

func randomHex(t testing.TB, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("pyservice: %v", err)
	}
	return hex.EncodeToString(b)
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
