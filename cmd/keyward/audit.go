package main

import (
	"bufio"
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	secrets "github.com/keyward/secrets"
	"github.com/keyward/secrets/audittable"
	"github.com/keyward/secrets/fernetstore"
)

// maxSince bounds a --since duration: a hundred years back.
const maxSince = 100 * 365 * 24 * time.Hour

// parseSince reads --since: a duration back from now ("90m", "24h") or an
// RFC 3339 time ("2026-01-31T00:00:00Z"). The value is not quoted back:
// it is short, but it is what the operator typed in the wrong place.
func parseSince(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	if d, err := time.ParseDuration(s); err == nil {
		if d < 0 || d > maxSince {
			return time.Time{}, fmt.Errorf("--since takes a duration from 0 to %s back, or an RFC 3339 time, such as --since 24h or --since 2026-01-31T00:00:00Z", "876000h")
		}
		return now.Add(-d), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		// Year 0 parses, but PostgreSQL and MariaDB refuse it (and
		// MariaDB a DATETIME past 9999) as if the query failed.
		if y := t.UTC().Year(); y < 1 || y > 9999 {
			return time.Time{}, fmt.Errorf("--since takes an RFC 3339 time from 0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z, or a duration such as 24h")
		}
		return t, nil
	}
	return time.Time{}, fmt.Errorf("--since takes a duration (such as 24h or 90m) or an RFC 3339 time (such as 2026-01-31T00:00:00Z)")
}

// auditTable is the audit table: --table, else the configuration's
// audit = db?table=NAME, else api_key_usage.
func (a *app) auditTable() (string, error) {
	if a.table != "" {
		return a.table, nil
	}
	if _, err := a.loadConfig(); err != nil {
		return "", err
	}
	if a.auditTableName != "" {
		return a.auditTableName, nil
	}
	return secrets.DefaultAuditTable, nil
}

func (a *app) auditCommand() *cobra.Command {
	var (
		ref, since string
		limit      int
		format     string
	)
	c := &cobra.Command{
		Use:   "audit [--ref REF] [--since DURATION|TIME] [--limit N] [-o json]",
		Short: "List recent key uses from the audit table, newest first",
		Long: `List the rows of the audit table that audit = db writes, newest first: when,
the outcome, the ref, the backend, whether a cache answered, who asked, the
api_key_id of a db: row, and the error. Rows never hold a value.

The table is --table (here the audit table, not the encrypted column's), else
the configuration's audit = db?table=NAME, else api_key_usage, on --db (default
$DATABASE_URL, else sqlite:keyward.db). The Python service's five-column
api_key_usage lists too, with what it has. Rows are read as they are printed,
so any size lists in little memory.

--ref keeps one ref's rows (db:42; the table needs its ref column), --since
the rows from a duration ago (24h, 90m) or an RFC 3339 time on, --limit the
newest N (default 50, 0 for every row). -o json prints one document,
{"rows":[...]}, each row with id, used_at, success, outcome, ref, backend,
cache_hit, requester, api_key_id and error_message (null where the table has
no such column or holds NULL).`,
		Args: noArgs(""),
		RunE: func(cmd *cobra.Command, _ []string) error {
			var from time.Time
			if since != "" {
				t, err := parseSince(since, time.Now())
				if err != nil {
					return withCode(exitUsage, err)
				}
				from = t
			}
			table, err := a.auditTable()
			if err != nil {
				return err
			}
			db, err := fernetstore.OpenDBWith(a.databaseURL(), &fernetstore.DBOptions{MustExist: true})
			if err != nil {
				return errorf(exitConfig, "%s: %s", a.databaseSource(), reason(err))
			}
			defer db.Close()
			ctx := cmd.Context()
			opts := &audittable.ListOptions{Table: table, Ref: ref, Since: from, Limit: limit}
			cols, err := audittable.TableColumns(ctx, db, opts)
			if err != nil {
				return classify(err)
			}
			if ref != "" && !slices.Contains(cols, "ref") {
				return errorf(exitUsage, "--ref: table %s has no ref column to filter on (it has %s)", table, strings.Join(cols, ", "))
			}
			if format == outputJSON {
				return a.auditJSON(ctx, db, opts, cols)
			}
			return a.auditText(ctx, db, opts, cols)
		},
	}
	f := c.Flags()
	f.StringVar(&ref, "ref", "", "keep the rows of this ref, such as db:42")
	f.StringVar(&since, "since", "", "keep the rows from this long ago (24h) or this RFC 3339 time on")
	limit = 50
	f.Var(&intFlag{value: &limit, name: "limit", min: 0, max: maxLimit, unit: "rows (0 for every row)", example: 100},
		"limit", "list at most the newest this many rows (0: every row)")
	addOutputFlag(c, &format)
	return c
}

// auditColumns are the text columns of audit, by the table column they
// need; OUTCOME is always there (from success when the table has no
// outcome column).
var auditColumns = []struct{ column, header string }{
	{"used_at", "USED_AT"}, {"", "OUTCOME"}, {"ref", "REF"}, {"backend", "BACKEND"},
	{"cache_hit", "CACHE"}, {"requester", "REQUESTER"}, {"api_key_id", "API_KEY_ID"}, {"error_message", "ERROR"},
}

func (a *app) auditText(ctx context.Context, db *sql.DB, opts *audittable.ListOptions, cols []string) error {
	var header []string
	for _, c := range auditColumns {
		if c.column == "" || slices.Contains(cols, c.column) {
			header = append(header, c.header)
		}
	}
	out := bufio.NewWriter(a.stdout)
	tw := newTable(out, header...)
	n := 0
	for r, err := range audittable.List(ctx, db, opts) {
		if err != nil {
			if n > 0 {
				tw.flush()
				out.Flush()
			}
			return classify(err)
		}
		n++
		var cells []string
		for _, c := range auditColumns {
			if c.column != "" && !slices.Contains(cols, c.column) {
				continue
			}
			cells = append(cells, auditCell(c.header, r, cols))
		}
		tw.add(cells...)
	}
	if err := tw.flush(); err != nil {
		return err
	}
	return out.Flush()
}

func auditCell(header string, r audittable.Row, cols []string) string {
	switch header {
	case "USED_AT":
		if r.UsedAt.IsZero() {
			return "-"
		}
		return r.UsedAt.UTC().Format("2006-01-02T15:04:05.000Z")
	case "OUTCOME":
		switch {
		case r.Outcome != "":
			return clean(r.Outcome)
		case !slices.Contains(cols, "success"):
			return "-"
		case r.Success:
			return "ok"
		}
		return "failed"
	case "REF":
		return orDash(clean(r.Ref))
	case "BACKEND":
		return orDash(clean(r.Backend))
	case "CACHE":
		if r.CacheHit {
			return "hit"
		}
		return "-"
	case "REQUESTER":
		return orDash(clean(r.Requester))
	case "API_KEY_ID":
		return orDash(clean(r.APIKeyID))
	case "ERROR":
		return orDash(clean(r.ErrorMessage))
	}
	return "-"
}

// jsonAudit is one row of audit -o json; what the table lacks or holds as
// NULL is null.
type jsonAudit struct {
	ID           *string    `json:"id"`
	UsedAt       *time.Time `json:"used_at"`
	Success      *bool      `json:"success"`
	Outcome      *string    `json:"outcome"`
	Ref          *string    `json:"ref"`
	Backend      *string    `json:"backend"`
	CacheHit     *bool      `json:"cache_hit"`
	Requester    *string    `json:"requester"`
	APIKeyID     *string    `json:"api_key_id"`
	ErrorMessage *string    `json:"error_message"`
}

func auditJSON(r audittable.Row, cols []string) jsonAudit {
	has := func(c string) bool { return slices.Contains(cols, c) }
	str := func(c, v string) *string {
		if !has(c) {
			return nil
		}
		return &v
	}
	boolean := func(c string, v bool) *bool {
		if !has(c) {
			return nil
		}
		return &v
	}
	j := jsonAudit{ID: str("id", r.ID), UsedAt: nullTime(r.UsedAt), Success: boolean("success", r.Success),
		Outcome: str("outcome", r.Outcome), Ref: str("ref", r.Ref), Backend: str("backend", r.Backend),
		CacheHit: boolean("cache_hit", r.CacheHit), Requester: str("requester", r.Requester),
		APIKeyID: nullString(r.APIKeyID), ErrorMessage: nullString(r.ErrorMessage)}
	return j
}

// auditJSON streams audit -o json: {"rows":[...]}, a row at a time.
func (a *app) auditJSON(ctx context.Context, db *sql.DB, opts *audittable.ListOptions, cols []string) error {
	doc := newJSONDoc(a.stdout, "rows")
	for r, err := range audittable.List(ctx, db, opts) {
		if err != nil {
			return doc.abort(classify(err))
		}
		doc.add(auditJSON(r, cols))
	}
	return doc.end(nil)
}
