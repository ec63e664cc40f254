package fernetstore

import (
	"context"
	"database/sql"
	"fmt"
	"maps"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	secrets "github.com/keyward/secrets"
	"github.com/keyward/secrets/driver"
)

// IDType says what a table's id column holds.
type IDType string

// The id types. An existing table's is read from the table itself; the
// option only has to be set for CreateSchema (to make a text-id table) or to
// insist on one.
const (
	IDAuto    IDType = ""        // read from the table; CreateSchema makes integer ids
	IDInteger IDType = "integer" // positive integers the database assigns
	IDText    IDType = "text"    // strings (UUIDs) the application assigns: Insert makes a UUID
)

// RefColumn is a column that names where a row's key lives when the value
// column holds none: a row whose value is NULL (or empty) and whose Column
// holds NAME resolves as Scheme:NAME, through the Stack the store serves
// (see secrets.Follower), so that ref meets the same allow list, cache and
// audit. For the Python service's table: {key_env_var, env} and
// {secret_name, awssm}.
type RefColumn struct {
	Column string
	Scheme string
}

// TableInfo describes the table a Store uses, as read from the database.
type TableInfo struct {
	// Table is the table's name as configured.
	Table string
	// IDType is what the id column holds (never IDAuto).
	IDType IDType
	// Columns are the columns the store reads and writes, by role: "id",
	// "value", "name", "provider", "expires", "created", and each ref
	// column by its name.
	Columns map[string]string
	// Absent lists the optional columns (name, provider, expires_at,
	// created_at) the table does not have, which the store does without.
	Absent []string
	// Created reports that CreateSchema made the table.
	Created bool
}

// schema is what the store learnt of its table on first use: which columns
// exist, what the ids are, and the SQL built for them.
type schema struct {
	q     queries
	has   struct{ name, provider, expires, created bool }
	text  bool  // ids are text
	uuid  bool  // PostgreSQL uuid ids: only what uuid_in reads can be one
	idLen int   // text ids: the characters the id column holds; 0 for no limit known
	idMax int64 // integer ids: the largest the id column holds
	rowid bool  // SQLite rowid table: walk in rowid order
	// noAssign: SQLite integer ids that are not the rowid alias, to which
	// SQLite assigns no id.
	noAssign bool
	// exact: the id column's comparison is not exact (MySQL text, citext),
	// so the row queries compare the id's bytes as well.
	exact   bool
	padded  bool // PostgreSQL CHAR(n) ids: read back with trailing spaces
	dialect Dialect
	// PostgreSQL: the notification channel, and that keyward's writes send
	// the NOTIFY themselves (set on PostgreSQL; BenchmarkNotify clears it
	// for its baseline).
	channel  string
	pgNotify bool
	// MariaDB and SQLite: the change triggers are installed, and keyward's
	// batches log their changes themselves.
	logged bool
	// idCharset: MySQL text ids in a character set other than utf8mb4 and
	// utf8mb3, which the compare-and-swap converts its ids to, and whose
	// repertoire fits checks (latin1, ascii).
	idCharset string
	idConvert string      // MySQL: the id parameter converted to idCharset, in the column's collation
	idType    string      // the id column's type, as the driver names it
	refs      []RefColumn // Column quoted
	idCast    string      // PostgreSQL: the type of a multi-row compare-and-swap's id
	info      TableInfo
}

// idArgs are the arguments of a query's id comparison (idEq): the id,
// twice where MySQL compares it exactly as well.
func (sc *schema) idArgs(id string) []any {
	a := sc.idArg(id)
	if sc.exact && sc.dialect == MySQL {
		return []any{a, a}
	}
	return []any{a}
}

// idArg is a row id as a query argument: an int64 for integer ids (a
// PostgreSQL bigint parameter takes no string), the string otherwise.
func (sc *schema) idArg(id string) any {
	if sc.text {
		return id
	}
	n, _ := rowID(id)
	return n
}

// maxIDLen bounds a text id: longer than any key column a database would
// index, and short enough to quote in an error.
const maxIDLen = 255

// parseID checks a ref's name against the id type: a positive integer, or
// text without control characters.
func (sc *schema) parseID(name string) (string, error) {
	if sc.text {
		if len(name) > maxIDLen {
			return "", driver.Errorf(secrets.CodeInvalidRef, "the ref must be a row id: at most %d bytes, optionally with #field", maxIDLen)
		}
		// What no ref can name (refs refuse control characters and
		// invalid UTF-8), Insert must not make.
		if !utf8.ValidString(name) || strings.ContainsFunc(name, unicode.IsControl) {
			return "", driver.Errorf(secrets.CodeInvalidRef, "a row id must be UTF-8 text without control characters")
		}
		return name, sc.fits(name)
	}
	if _, ok := rowID(name); !ok {
		return "", driver.Errorf(secrets.CodeInvalidRef, "%s", intRefShape)
	}
	return name, sc.fits(name)
}

const intRefShape = "the ref must be a row id (the id column holds integers: a positive integer, without leading zeros), optionally with #field"

// canonicalUUID is the form PostgreSQL prints of a UUID it reads (id
// passed isPostgresUUID): 32 lower-case hex digits in groups of 8-4-4-4-12.
func canonicalUUID(id string) string {
	h := strings.ToLower(strings.NewReplacer("{", "", "}", "", "-", "").Replace(id))
	if len(h) != 32 {
		return id
	}
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// fits checks a text id against what the id column can hold, so that an id
// the column cannot hold is refused as an integer column refuses "abc",
// without asking the database (which would fail the query, and the store
// would report a database error, as if the server were down).
func (sc *schema) fits(id string) error {
	if !sc.text {
		if n, _ := rowID(id); n > sc.idMax {
			return driver.Errorf(secrets.CodeInvalidRef, "the id is larger than the id column %s holds (type %s: at most %d)", sc.info.Columns["id"], sc.idType, sc.idMax)
		}
		return nil
	}
	if sc.uuid && !isPostgresUUID(id) {
		return driver.Errorf(secrets.CodeInvalidRef, "%s", uuidRefShape)
	}
	if sc.uuid {
		// PostgreSQL reads E8D6..., {e8d6...} and e8d6... without hyphens
		// as one UUID; a ref names it one way only, as the database
		// prints it, so the cache entry a change invalidates is the one
		// that was cached.
		if c := canonicalUUID(id); c != id {
			return driver.Errorf(secrets.CodeInvalidRef, "write the row id as %s: a ref names a row in one way only (lower case, with hyphens)", c)
		}
	}
	if fit := charsetHolds[sc.idCharset]; fit != nil && strings.ContainsFunc(id, func(r rune) bool { return !fit(r) }) {
		// MySQL would refuse the comparison (error 1267, an illegal mix
		// of collations), which reads as a database error.
		return driver.Errorf(secrets.CodeInvalidRef, "the id has characters that the id column %s cannot hold (its character set is %s)", sc.info.Columns["id"], sc.idCharset)
	}
	if n := utf8.RuneCountInString(id); sc.idLen > 0 && n > sc.idLen {
		return driver.Errorf(secrets.CodeInvalidRef, "the id is %d characters long, and the id column %s holds at most %d characters", n, sc.info.Columns["id"], sc.idLen)
	}
	return nil
}

const uuidRefShape = "the ref must be a row id (the id column holds UUIDs: 32 hex digits, such as 123e4567-e89b-12d3-a456-426614174000), optionally with #field"

// isPostgresUUID reports whether PostgreSQL's uuid type reads s: 32 hex
// digits, with an optional '-' after any group of four (but the last), the
// whole optionally in braces. It reads exactly what uuid_in does, so that
// every form the database accepts still finds its row.
func isPostgresUUID(s string) bool {
	if strings.HasPrefix(s, "{") {
		if !strings.HasSuffix(s, "}") || len(s) < 2 {
			return false
		}
		s = s[1 : len(s)-1]
	}
	digits := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case '0' <= c && c <= '9', 'a' <= c && c <= 'f', 'A' <= c && c <= 'F':
			digits++
		case c == '-' && digits%4 == 0 && digits > 0 && digits < 32 && s[i-1] != '-':
		default:
			return false
		}
	}
	return digits == 32
}

// typeKind sorts a column's database type, as database/sql's
// ColumnType.DatabaseTypeName reports it (SQLite: the declared type; pgx:
// INT8, VARCHAR, UUID, ...; MySQL: BIGINT, VARCHAR, ...), by SQLite's own
// affinity rules, which read every dialect's names well enough.
type typeKind uint8

const (
	kindAny typeKind = iota // SQLite column without a declared type
	kindInt
	kindText
	kindUUID
	kindTime
	kindBinary
	kindOther
)

func kindOf(dbType string) typeKind {
	t := strings.ToUpper(strings.TrimSpace(dbType))
	switch {
	case t == "":
		return kindAny
	case t == "UUID":
		return kindUUID
	case strings.Contains(t, "INT"):
		return kindInt
	case strings.Contains(t, "CHAR"), strings.Contains(t, "TEXT"), strings.Contains(t, "CLOB"), strings.Contains(t, "STRING"):
		return kindText
	case strings.Contains(t, "TIME"), strings.Contains(t, "DATE"):
		return kindTime
	case strings.Contains(t, "BLOB"), strings.Contains(t, "BYTEA"), strings.Contains(t, "BINARY"):
		return kindBinary
	}
	return kindOther
}

// introspect reads the table's columns and builds the schema: the table
// and every column the options name must exist, with types the store can
// use; an optional column left at its default name is done without when
// the table lacks it. Its errors are configuration errors (ErrInvalidRef)
// that name what is missing, or database errors.
func (b *base) introspect(ctx context.Context) (*schema, error) {
	o := &b.opts
	table := def(o.Table, "api_keys")
	qt, _ := b.d.quoteIdent(table, true) // checked by buildBase
	exists, err := b.tableExists(ctx, table)
	if err != nil {
		if schemaName, _ := splitTable(table); b.d == SQLite && schemaName != nil && (strings.Contains(err.Error(), "unknown database") || strings.Contains(err.Error(), "no such table: "+fmt.Sprint(schemaName)+".sqlite_master")) {
			// SQLite's catalog of an unknown schema is an error (no such
			// table: S.sqlite_master), not an empty answer.
			return nil, driver.Errorf(secrets.CodeInvalidRef,
				"the table %s names the schema %s, which this SQLite database does not have (it has main, temp and the databases attached to it): name the table without a schema, or attach the database", table, schemaName)
		}
		return nil, dbError(err)
	}
	if !exists {
		return nil, driver.Errorf(secrets.CodeInvalidRef,
			"the table %s does not exist in this database: create it with keyward init (Store.CreateSchema), or name an existing table (?table= in the fernet:// URL, --table)", table)
	}
	cols, err := b.columnTypes(ctx, table, qt)
	if err != nil {
		return nil, dbError(err)
	}
	find := func(name string) (string, column, bool) {
		if t, ok := cols[name]; ok {
			return name, t, true
		}
		if b.d != Postgres { // SQLite and MySQL names are case-insensitive
			for c, t := range cols {
				if strings.EqualFold(c, name) {
					return c, t, true
				}
			}
		}
		return "", column{}, false
	}
	sc := &schema{info: TableInfo{Table: table, Columns: map[string]string{}}}
	var problems []string
	need := func(role, param, name string, optional bool, ok func(typeKind) bool, want string) (string, bool) {
		if name == "-" {
			return "", false
		}
		explicit := name != ""
		if !explicit {
			name = map[string]string{"id": "id", "value": "api_key", "name": "name", "provider": "provider", "expires": "expires_at", "created": "created_at"}[role]
		}
		col, c, found := find(name)
		typ := c.typ
		if !found {
			if optional && !explicit {
				sc.info.Absent = append(sc.info.Absent, name)
				return "", false
			}
			problems = append(problems, fmt.Sprintf("it has no column %s (%s=)", name, param))
			return "", false
		}
		if ok != nil && !ok(c.kind()) {
			problems = append(problems, fmt.Sprintf("its column %s has type %s, which keyward cannot use as %s", col, typ, want))
			return "", false
		}
		sc.info.Columns[role] = col
		q, _ := b.d.quoteIdent(col, false)
		return q, true
	}
	textual := func(k typeKind) bool { return k == kindText || k == kindAny }
	timeLike := func(k typeKind) bool { return k == kindTime || k == kindText || k == kindAny || k == kindInt }
	q := &sc.q
	q.table = qt
	var idOK bool
	q.id, idOK = need("id", "id_column", o.IDColumn, false, func(k typeKind) bool { return k != kindBinary && k != kindOther && k != kindTime }, "an id (use an integer or a text column)")
	q.value, _ = need("value", "value_column", o.ValueColumn, false, textual, "the value column (Fernet tokens are text: use TEXT)")
	q.name, sc.has.name = need("name", "name_column", o.NameColumn, true, nil, "")
	q.provider, sc.has.provider = need("provider", "provider_column", o.ProviderColumn, true, nil, "")
	q.expires, sc.has.expires = need("expires", "expires_column", o.ExpiresAtColumn, true, timeLike, "a time (use DATETIME or TIMESTAMP)")
	q.created, sc.has.created = need("created", "created_column", o.CreatedAtColumn, true, timeLike, "a time (use DATETIME or TIMESTAMP)")
	for _, r := range o.RefColumns {
		if qc, ok := need(r.Column, "ref_columns", r.Column, false, textual, "a reference (it names an env var or a secret: use VARCHAR or TEXT)"); ok {
			sc.refs = append(sc.refs, RefColumn{Column: qc, Scheme: r.Scheme})
		}
	}
	if idOK {
		_, c, _ := find(sc.info.Columns["id"])
		typ, k := c.typ, c.kind()
		sc.idType, sc.idLen, sc.idMax = typ, c.length, intMax(b.d, typ)
		if cs := c.charset; b.d == MySQL && cs != "" && !strings.HasPrefix(cs, "utf8") && pgTypeName.MatchString(cs) {
			sc.idCharset = cs
			if pgTypeName.MatchString(c.collation) {
				// The converted parameter takes the column's collation:
				// in the set's default one it would be an illegal mix
				// with a column of another (latin1_general_cs, say).
				sc.idConvert = "CONVERT(? USING " + cs + ") COLLATE " + c.collation
			} else {
				sc.idConvert = "CONVERT(? USING " + cs + ")"
			}
		}
		sc.text = k != kindInt
		if b.d == SQLite {
			untyped, err := b.sqliteID(ctx, table, qt, sc, k)
			if err != nil {
				return nil, err
			}
			if untyped != "" {
				problems = append(problems, untyped)
			}
			k = kindInt
			if sc.text {
				k = kindText
			}
		}
		sc.idCast = "text"
		switch {
		case k == kindUUID:
			sc.idCast = "uuid"
			sc.uuid = b.d == Postgres // SQLite stores any text in a UUID column
		case !sc.text:
			sc.idCast = "bigint"
		case b.d == Postgres && c.pgType == "bpchar":
			// CHAR(n): its ids come back padded, and only a bpchar
			// compares them without the padding. (Every other text type,
			// domains included, compares with a text.)
			sc.idCast = "bpchar"
		}
		sc.exact = b.d == Postgres && sc.text && c.inexact
		sc.padded = b.d == Postgres && c.pgType == "bpchar"
		switch {
		case kindOf(typ) == kindAny:
			// sqliteID has compared id_type= with the stored ids.
		case o.IDType == IDInteger && sc.text:
			problems = append(problems, fmt.Sprintf("id_type=integer, but its id column %s has type %s (leave id_type out to read it from the table)", sc.info.Columns["id"], typ))
		case o.IDType == IDText && !sc.text && kindOf(typ) == kindInt:
			problems = append(problems, fmt.Sprintf("id_type=text, but its id column %s has type %s (leave id_type out to read it from the table)", sc.info.Columns["id"], typ))
		}
	}
	if len(problems) > 0 {
		return nil, driver.Errorf(secrets.CodeInvalidRef, "the table %s cannot be used as configured: %s", table, strings.Join(problems, "; "))
	}
	sc.info.IDType = IDInteger
	if sc.text {
		sc.info.IDType = IDText
	}
	if b.d == SQLite {
		// A rowid table (every table but WITHOUT ROWID ones) is walked in
		// rowid order, its physical order.
		// A column named rowid shadows the rowid (and a WITHOUT ROWID
		// table may have one): such a table is walked in id order.
		rows, err := b.db.QueryContext(ctx, "SELECT rowid FROM "+qt+" WHERE 1=0")
		if err == nil {
			rows.Close()
			sc.rowid = !slices.ContainsFunc(slices.Collect(maps.Keys(cols)), func(c string) bool { return strings.EqualFold(c, "rowid") })
		}
	}
	sc.dialect = b.d
	if b.d == MySQL && sc.text {
		sc.exact = true
	}
	// PostgreSQL: keyward's writes NOTIFY their changes themselves (the
	// trigger of InstallTriggers leaves them alone: a migration that drops
	// the trigger must not silence them). MariaDB and SQLite: the triggers
	// log every change, and keyward's batches log theirs in one row.
	if b.d == Postgres {
		// The channel names the schema the table was found in, so that
		// services in two schemas of one database do not hear each other.
		qualified := table
		if !strings.Contains(table, ".") {
			var nsp string
			if err := b.db.QueryRowContext(ctx, "SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = to_regclass($1)", qt).Scan(&nsp); err != nil {
				return nil, dbError(err)
			}
			qualified = nsp + "." + table
		}
		sc.channel = Channel(qualified)
		sc.pgNotify = true
	} else {
		trig, err := b.triggersInstalled(ctx, table)
		if err != nil {
			return nil, dbError(err)
		}
		sc.logged = trig
	}
	buildQueries(b.d, sc)
	return sc, nil
}

// sqliteID reads what SQLite needs beyond the id column's declared type:
// whether the column is the table's INTEGER PRIMARY KEY, the rowid alias
// to which SQLite assigns ids (any other integer column gets none, and an
// insert without an id would leave it NULL), and, for a column with no
// declared type, which keeps each id as it was bound and never finds an
// integer by its text, what the stored ids are. It sets sc.text and
// sc.noAssign, and returns a problem with the table, or "".
func (b *base) sqliteID(ctx context.Context, table, qt string, sc *schema, k typeKind) (string, error) {
	schemaName, name := splitTable(table)
	if schemaName == nil {
		schemaName = "main"
	}
	col := sc.info.Columns["id"]
	var declared string
	var pk, pks int
	rows, err := b.db.QueryContext(ctx, "SELECT name, type, pk FROM pragma_table_info(?, ?)", name, schemaName)
	if err != nil {
		return "", dbError(err)
	}
	defer rows.Close()
	for rows.Next() {
		var n, t string
		var p int
		if err := rows.Scan(&n, &t, &p); err != nil {
			return "", dbError(err)
		}
		if p > 0 {
			pks++
		}
		if strings.EqualFold(n, col) {
			declared, pk = t, p
		}
	}
	if err := rows.Err(); err != nil {
		return "", dbError(err)
	}
	rows.Close()
	sc.noAssign = !(strings.EqualFold(strings.TrimSpace(declared), "INTEGER") && pk == 1 && pks == 1)
	qc, _ := b.d.quoteIdent(col, false)
	if k == kindInt && sc.noAssign {
		// Integer affinity keeps a text that is no number as text: such a
		// column (a BIGINT PRIMARY KEY, say) may hold ids that are not
		// integers, which integer refs, paging and the compare-and-swap
		// cannot name.
		var texts bool
		err := b.db.QueryRowContext(ctx, "SELECT EXISTS (SELECT 1 FROM "+qt+" WHERE typeof("+qc+") NOT IN ('integer', 'null'))").Scan(&texts)
		if err != nil {
			return "", dbError(err)
		}
		if texts {
			return fmt.Sprintf("its id column %s has type %s but holds ids that are not integers (SQLite keeps such text as it was given): give those rows integer ids, or declare the column VARCHAR(36) for text ids", col, declared), nil
		}
		return "", nil
	}
	if k != kindAny {
		return "", nil
	}
	var ints, texts, others bool
	probe := func(cond string) string {
		return "EXISTS (SELECT 1 FROM " + qt + " WHERE " + cond + ")"
	}
	err = b.db.QueryRowContext(ctx, "SELECT "+
		probe("typeof("+qc+") = 'integer'")+", "+
		probe("typeof("+qc+") = 'text'")+", "+
		probe("typeof("+qc+") NOT IN ('integer', 'text')")).Scan(&ints, &texts, &others)
	if err != nil {
		return "", dbError(err)
	}
	o := &b.opts
	declare := "declare its type (INTEGER PRIMARY KEY, or VARCHAR(36) for UUIDs)"
	switch {
	case others:
		return fmt.Sprintf("its id column %s has no declared type and holds ids that are neither integers nor text: %s", col, declare), nil
	case ints && texts:
		return fmt.Sprintf("its id column %s has no declared type and holds both integers and text: %s, and give every row an id of that kind", col, declare), nil
	case ints:
		if o.IDType == IDText {
			return fmt.Sprintf("id_type=text, but its id column %s has no declared type and holds integers (leave id_type out to read it from the table)", col), nil
		}
		sc.text = false
	case texts:
		if o.IDType == IDInteger {
			return fmt.Sprintf("id_type=integer, but its id column %s has no declared type and holds text (leave id_type out to read it from the table)", col), nil
		}
		sc.text = true
	case o.IDType == "":
		return fmt.Sprintf("its id column %s has no declared type and the table is empty, so keyward cannot tell integer ids from text: %s, or pass id_type=integer or id_type=text", col, declare), nil
	default:
		sc.text = o.IDType == IDText
	}
	return "", nil
}

// ddlTypes are the column types of keyward's default schema, per dialect.
// MySQL: utf8mb4_bin, so values sort and compare case-sensitively (the
// compare-and-swap compares bytes whatever the collation, see sameValue);
// MEDIUMTEXT, as TEXT stops at 64 KiB.
var ddlTypes = map[Dialect]struct{ intID, textID, label, value, time, now, suffix string }{
	SQLite:   {"INTEGER PRIMARY KEY AUTOINCREMENT", "VARCHAR(36) NOT NULL PRIMARY KEY", "TEXT", "TEXT", "TIMESTAMP", "CURRENT_TIMESTAMP", ""},
	Postgres: {"BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY", "VARCHAR(36) PRIMARY KEY", "TEXT", "TEXT", "TIMESTAMPTZ", "now()", ""},
	MySQL:    {"BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY", "VARCHAR(36) NOT NULL PRIMARY KEY", "VARCHAR(255)", "MEDIUMTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin", "DATETIME(6)", "CURRENT_TIMESTAMP(6)", " DEFAULT CHARSET=utf8mb4"},
}

// tableExists asks the database's catalog whether table exists, so a
// missing table is told apart from any other failure without the driver's
// error types (this package links no driver).
func (b *base) tableExists(ctx context.Context, table string) (bool, error) {
	schemaName, name, qualified := strings.Cut(table, ".")
	if !qualified {
		name, schemaName = schemaName, ""
	}
	var n int
	var err error
	switch b.d {
	case SQLite:
		master := "sqlite_master"
		if qualified {
			qs, _ := b.d.quoteIdent(schemaName, false)
			master = qs + ".sqlite_master"
		}
		err = b.db.QueryRowContext(ctx, "SELECT count(*) FROM "+master+" WHERE type IN ('table', 'view') AND name = ? COLLATE NOCASE", name).Scan(&n)
	case Postgres:
		qt, _ := b.d.quoteIdent(table, true)
		err = b.db.QueryRowContext(ctx, "SELECT count(*) FROM (SELECT to_regclass($1) AS c) AS r WHERE c IS NOT NULL", qt).Scan(&n)
	case MySQL:
		var s any
		if qualified {
			s = schemaName
		}
		err = b.db.QueryRowContext(ctx, "SELECT count(*) FROM information_schema.tables WHERE table_schema = COALESCE(?, DATABASE()) AND table_name = ?", s, name).Scan(&n)
	}
	return n > 0, err
}

// charsetHolds says which characters the MySQL character sets with a small
// repertoire hold. MySQL's latin1 is cp1252: Latin-1 and the 27 letters
// and signs cp1252 puts at 0x80-0x9F (€, Š, “, ™, ...), whose Latin-1 code
// points are control characters, which no id holds anyway.
var charsetHolds = map[string]func(rune) bool{
	"latin1": func(r rune) bool { return r <= 0xFF || strings.ContainsRune(cp1252Extra, r) },
	"ascii":  func(r rune) bool { return r <= 0x7F },
}

const cp1252Extra = "€‚ƒ„…†‡ˆ‰Š‹ŒŽ‘’“”•–—˜™š›œžŸ"

// pgTypeName is a PostgreSQL type name the compare-and-swap may cast to
// unquoted.
var pgTypeName = regexp.MustCompile(`^[a-z_][a-z0-9_]*$`)

// column is what the store knows of a column's type.
type column struct {
	typ    string // the database's name for it, as ColumnType.DatabaseTypeName reports it
	length int    // the characters a text column holds; 0 for no limit known
	str    bool   // PostgreSQL: a type of the string category, such as citext
	pgType string // PostgreSQL: the type's name in the catalog (bpchar, varchar, citext), a domain's base type's
	// inexact: PostgreSQL, equal values may differ (citext, a
	// nondeterministic collation)
	inexact bool
	// charset: MySQL, a text column's character set (latin1, utf8mb4)
	charset   string
	collation string // MySQL: a text column's collation
}

func (c column) kind() typeKind {
	if c.str {
		return kindText
	}
	return kindOf(c.typ)
}

// columnTypes returns the table's columns and their database types, from
// a query that reads no row, and the length of text columns: from the
// driver on PostgreSQL (the column's typmod), from information_schema on
// MySQL (whose driver does not report it). SQLite keeps text of any length
// in a VARCHAR(36).
func (b *base) columnTypes(ctx context.Context, table, qt string) (map[string]column, error) {
	rows, err := b.db.QueryContext(ctx, "SELECT * FROM "+qt+" WHERE 1=0")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	types, err := rows.ColumnTypes()
	if err != nil {
		return nil, err
	}
	cols := make(map[string]column, len(types))
	for _, t := range types {
		c := column{typ: t.DatabaseTypeName()}
		// pgx reports text as MaxInt64, and a VARCHAR without a length as
		// its typmod (-1) less the header, a negative number.
		if n, ok := t.Length(); ok && b.d == Postgres && n > 0 && n <= math.MaxInt32 {
			c.length = int(n)
		}
		cols[t.Name()] = c
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	rows.Close()
	if b.d == Postgres {
		// pgx names a type it does not know, such as an extension's
		// (citext), by its OID; the catalog gives every column's type
		// name and category, and a string-category type (citext, name)
		// holds text.
		// The base type of a domain (of a domain...), and whether the
		// column's collation compares exactly (an ICU collation may not).
		cats, err := b.db.QueryContext(ctx, `SELECT a.attname, t.typname, t.typcategory, COALESCE(bt.typname, t.typname),
			COALESCE(NOT c.collisdeterministic, false)
			FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
			LEFT JOIN LATERAL (
				WITH RECURSIVE d(oid, base, depth) AS (
					SELECT t.oid, t.typbasetype, 0
					UNION ALL SELECT p.oid, p.typbasetype, d.depth + 1 FROM pg_catalog.pg_type p JOIN d ON p.oid = d.base WHERE d.depth < 32)
				SELECT p.typname FROM d JOIN pg_catalog.pg_type p ON p.oid = d.oid WHERE d.base = 0 LIMIT 1) bt ON true
			LEFT JOIN pg_catalog.pg_collation c ON c.oid = a.attcollation
			WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped`, qt)
		if err != nil {
			return nil, err
		}
		defer cats.Close()
		for cats.Next() {
			var name, typname, category, base string
			var inexact bool
			if err := cats.Scan(&name, &typname, &category, &base, &inexact); err != nil {
				return nil, err
			}
			c, ok := cols[name]
			if !ok {
				continue
			}
			if _, err := strconv.ParseUint(c.typ, 10, 32); err == nil {
				c.typ = strings.ToUpper(typname)
			}
			c.str, c.pgType = category == "S", base
			c.inexact = inexact || base == "citext"
			cols[name] = c
		}
		return cols, cats.Err()
	}
	if b.d == MySQL {
		schemaName, name := splitTable(table)
		lens, err := b.db.QueryContext(ctx, "SELECT column_name, character_maximum_length, COALESCE(character_set_name, ''), COALESCE(collation_name, '') FROM information_schema.columns WHERE table_schema = COALESCE(?, DATABASE()) AND table_name = ? AND character_maximum_length IS NOT NULL", schemaName, name)
		if err != nil {
			return nil, err
		}
		defer lens.Close()
		for lens.Next() {
			var col, charset, collation string
			var n int64
			if err := lens.Scan(&col, &n, &charset, &collation); err != nil {
				return nil, err
			}
			if c, ok := cols[col]; ok && n > 0 && n <= math.MaxInt32 {
				c.length, c.charset, c.collation = int(n), strings.ToLower(charset), strings.ToLower(collation)
				cols[col] = c
			}
		}
		return cols, lens.Err()
	}
	return cols, nil
}

// splitTable splits a table name into its schema (nil when it has none,
// for the database's current one) and its name, for the catalogs.
func splitTable(table string) (schemaName any, name string) {
	s, n, qualified := strings.Cut(table, ".")
	if !qualified {
		return nil, s
	}
	return s, n
}

// intMax is the largest id an integer column of type typ (as the driver
// names it) holds. SQLite's integers are all 64 bits.
func intMax(d Dialect, typ string) int64 {
	t := strings.ToUpper(strings.TrimSpace(typ))
	switch d {
	case Postgres:
		switch t {
		case "INT2", "SMALLINT":
			return math.MaxInt16
		case "INT4", "INTEGER", "INT":
			return math.MaxInt32
		}
	case MySQL:
		base, unsigned := strings.CutPrefix(t, "UNSIGNED ")
		max := map[string]int64{"TINYINT": math.MaxInt8, "SMALLINT": math.MaxInt16, "MEDIUMINT": 1<<23 - 1, "INT": math.MaxInt32, "INTEGER": math.MaxInt32}[base]
		if max != 0 {
			if unsigned {
				max = 2*max + 1
			}
			return max
		}
	}
	return math.MaxInt64
}

// schemaOf returns the table's schema, read on first use (and again after
// a failure, so a table created meanwhile is found).
func (b *base) schemaOf(ctx context.Context) (*schema, error) {
	return b.sch.Get(ctx)
}

// createTable creates the table the options describe, if it does not
// exist: keyward's default schema, with text ids for IDType IDText and a
// nullable VARCHAR(255) per ref column. It reports whether it made it.
func (b *base) createTable(ctx context.Context) (bool, error) {
	o := &b.opts
	table := def(o.Table, "api_keys")
	exists, err := b.tableExists(ctx, table)
	if err != nil || exists {
		return false, err
	}
	for _, c := range []string{o.NameColumn, o.ProviderColumn, o.ExpiresAtColumn, o.CreatedAtColumn} {
		if c == "-" {
			return false, driver.Errorf(secrets.CodeInvalidRef, "the table %s does not exist, and CreateSchema makes every column: options with a \"-\" column describe an existing table", table)
		}
	}
	d := b.d
	quote := func(name, dflt string) string {
		q, _ := d.quoteIdent(def(name, dflt), false)
		return q
	}
	qt, _ := d.quoteIdent(table, true)
	id, name, provider, value := quote(o.IDColumn, "id"), quote(o.NameColumn, "name"), quote(o.ProviderColumn, "provider"), quote(o.ValueColumn, "api_key")
	expires, created := quote(o.ExpiresAtColumn, "expires_at"), quote(o.CreatedAtColumn, "created_at")
	valueNull := "NOT NULL"
	if len(o.RefColumns) > 0 {
		valueNull = "NULL" // a reference row has no value
	}
	var refs strings.Builder
	for _, r := range o.RefColumns {
		fmt.Fprintf(&refs, ",\n\t%s VARCHAR(255) NULL", quote(r.Column, ""))
	}
	t := ddlTypes[d]
	idDef := t.intID
	if o.IDType == IDText {
		idDef = t.textID
	}
	ddl := fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s (\n\t%s %s,\n\t%s %s NOT NULL DEFAULT '',\n\t%s %s NOT NULL DEFAULT '',\n\t%s %s %s%s,\n\t%s %s NULL,\n\t%s %s NOT NULL DEFAULT %s)%s",
		qt, id, idDef, name, t.label, provider, t.label, value, t.value, valueNull, refs.String(), expires, t.time, created, t.time, t.now, t.suffix)
	if _, err := b.db.ExecContext(ctx, ddl); err != nil {
		return false, err
	}
	return true, nil
}

// scanID reads an id column into its text.
type scanID struct{ s *string }

func (v scanID) Scan(src any) error {
	var n sql.NullString
	if err := n.Scan(src); err != nil {
		return err
	}
	*v.s = n.String
	return nil
}
