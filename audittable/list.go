package audittable

import (
	"context"
	"database/sql"
	"fmt"
	"iter"
	"slices"
	"strings"
	"time"

	secrets "github.com/keyward/secrets"
	"github.com/keyward/secrets/fernetstore"
)

// Row is one row of the audit table. A column the table lacks, or a NULL,
// reads as the zero value; Columns says which the table has.
type Row struct {
	ID           string
	APIKeyID     string // "" for NULL
	UsedAt       time.Time
	Success      bool
	ErrorMessage string // "" for NULL
	Ref          string
	Backend      string
	Outcome      string
	CacheHit     bool
	Requester    string
}

// ListOptions says which rows List reads. A nil *ListOptions lists every
// row of api_key_usage.
type ListOptions struct {
	// Table is the audit table; "" means api_key_usage.
	Table string
	// Dialect is the database's SQL flavour; "" detects it.
	Dialect fernetstore.Dialect
	// Ref keeps the rows of this ref ("db:42"); the table needs its ref
	// column for it.
	Ref string
	// Since keeps the rows used at or after it.
	Since time.Time
	// Limit lists at most this many rows; 0 lists every one.
	Limit int
}

// TableColumns returns which of Columns the table has, in their order. A
// table that does not exist is ErrInvalidRef; a database that cannot be
// reached, ErrUnavailable.
func TableColumns(ctx context.Context, db *sql.DB, opts *ListOptions) ([]string, error) {
	o, quoted, err := listSetup(db, opts)
	if err != nil {
		return nil, err
	}
	return readColumns(ctx, db, o.Dialect, quoted, o.Table)
}

func listSetup(db *sql.DB, opts *ListOptions) (ListOptions, string, error) {
	var o ListOptions
	if opts != nil {
		o = *opts
	}
	if o.Table == "" {
		o.Table = secrets.DefaultAuditTable
	}
	if o.Limit < 0 {
		return o, "", invalid("ListOptions.Limit must be 0 (every row) or more")
	}
	if o.Dialect == "" {
		d, err := fernetstore.DetectDialect(db)
		if err != nil {
			return o, "", invalid(err.Error())
		}
		o.Dialect = d
	}
	quoted, err := quoteTable(o.Dialect, o.Table)
	return o, quoted, err
}

// List streams the table's rows newest first (by used_at, then id), one
// query read a row at a time, so memory does not grow with the table.
// Stop early by breaking out of the loop. An error ends the sequence.
func List(ctx context.Context, db *sql.DB, opts *ListOptions) iter.Seq2[Row, error] {
	return func(yield func(Row, error) bool) {
		o, quoted, err := listSetup(db, opts)
		if err != nil {
			yield(Row{}, err)
			return
		}
		cols, err := readColumns(ctx, db, o.Dialect, quoted, o.Table)
		if err != nil {
			yield(Row{}, err)
			return
		}
		has := func(c string) bool { return slices.Contains(cols, c) }
		var where []string
		var args []any
		if o.Ref != "" {
			if !has("ref") {
				yield(Row{}, invalid(fmt.Sprintf("table %s has no ref column to filter on (the Python service's table has only %s)",
					o.Table, strings.Join(cols, ", "))))
				return
			}
			args = append(args, o.Ref)
			where = append(where, quoteName(o.Dialect, "ref")+" = "+placeholder(o.Dialect, len(args)))
		}
		if !o.Since.IsZero() {
			if !has("used_at") {
				yield(Row{}, invalid(fmt.Sprintf("table %s has no used_at column to filter on", o.Table)))
				return
			}
			args = append(args, timeArg(o.Dialect, o.Since))
			where = append(where, quoteName(o.Dialect, "used_at")+" >= "+placeholder(o.Dialect, len(args)))
		}
		var q strings.Builder
		q.WriteString("SELECT ")
		for i, c := range cols {
			if i > 0 {
				q.WriteString(", ")
			}
			q.WriteString(quoteName(o.Dialect, c))
		}
		q.WriteString(" FROM " + quoted)
		if len(where) > 0 {
			q.WriteString(" WHERE " + strings.Join(where, " AND "))
		}
		var order []string
		for _, c := range []string{"used_at", "id"} {
			if has(c) {
				order = append(order, quoteName(o.Dialect, c)+" DESC")
			}
		}
		if len(order) > 0 {
			q.WriteString(" ORDER BY " + strings.Join(order, ", "))
		}
		if o.Limit > 0 {
			fmt.Fprintf(&q, " LIMIT %d", o.Limit)
		}
		rows, err := db.QueryContext(ctx, q.String(), args...)
		if err != nil {
			yield(Row{}, dbError(ctx, err))
			return
		}
		defer rows.Close()
		dest := make([]any, len(cols))
		var (
			id, keyID, errMsg, ref, backend, outcome, requester sql.NullString
			success, cacheHit                                   sql.NullBool
			usedAt                                              any
		)
		for i, c := range cols {
			dest[i] = map[string]any{"id": &id, "api_key_id": &keyID, "used_at": &usedAt, "success": &success,
				"error_message": &errMsg, "ref": &ref, "backend": &backend, "outcome": &outcome,
				"cache_hit": &cacheHit, "requester": &requester}[c]
		}
		for rows.Next() {
			usedAt = nil
			if err := rows.Scan(dest...); err != nil {
				yield(Row{}, dbError(ctx, err))
				return
			}
			t, err := parseTime(usedAt)
			if err != nil {
				yield(Row{}, &secrets.Error{Op: "audit", Backend: "audittable", Code: secrets.CodeInvalidRef,
					Reason: "a used_at value cannot be read: " + err.Error()})
				return
			}
			r := Row{ID: id.String, APIKeyID: keyID.String, UsedAt: t, Success: success.Bool,
				ErrorMessage: errMsg.String, Ref: ref.String, Backend: backend.String, Outcome: outcome.String,
				CacheHit: cacheHit.Bool, Requester: requester.String}
			if !yield(r, nil) {
				return
			}
		}
		if err := rows.Err(); err != nil {
			yield(Row{}, dbError(ctx, err))
		}
	}
}
