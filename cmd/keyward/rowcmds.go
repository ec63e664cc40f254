package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/spf13/cobra"

	secrets "github.com/keyward/secrets"
	"github.com/keyward/secrets/fernetstore"
)

// expiresNone is the --expires of update that clears the expiry.
const expiresNone = "none"

func (a *app) updateCommand() *cobra.Command {
	var expires string
	c := &cobra.Command{
		Use:   "update ID [--expires DATE|none] < secret",
		Short: "Replace the value of row ID with a secret read from stdin",
		Long: `Replace the value of row ID (as list shows it: an integer, or a UUID or other
text id) with a new one, encrypted under ENCRYPTION_KEY; nothing else in the
row changes. Services resolving db:ID get the new value once their caches
(the configuration's cache ttl) let the old one go.

The value is read from stdin as put reads it, never from an argument:
printf '%s' "$KEY" | keyward update 42. One trailing newline is dropped; an
empty value is refused; on a terminal it is read without echo.

Without --expires the row keeps its expiry (keyward list shows it; an expired
row stays expired). --expires DATE sets a new one: RFC 3339
(2027-01-31T00:00:00Z) or a date (2027-01-31, meaning 00:00 UTC that day);
--expires none clears it. A table without an expiry column refuses --expires.
A row that does not exist is exit 1.`,
		Args:              takes(1, "the row id", updateHint),
		ValidArgsFunction: cobra.NoFileCompletions,
		RunE: func(cmd *cobra.Command, args []string) error {
			id := args[0]
			var exp time.Time
			setExpiry := expires != ""
			if setExpiry && !strings.EqualFold(strings.TrimSpace(expires), expiresNone) {
				t, err := parseExpires(expires)
				if err != nil {
					return errorf(exitUsage, "%v, or none to clear the expiry", err)
				}
				exp = t
			}
			value, err := a.readSecret("keyward update " + clean(id))
			if err != nil {
				return err
			}
			s, err := a.openStore()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			info, err := a.describe(ctx, s)
			if err != nil {
				return err
			}
			if _, ok := info.Columns["expires"]; setExpiry && !ok {
				return errorf(exitUsage, "--expires: table %s has no expiry column (give expires_column= on the db line if it has one under another name); leave --expires out", info.Table)
			}
			if setExpiry {
				err = s.Update(ctx, fernetstore.RowRef(id), value, exp)
			} else {
				err = s.UpdateValue(ctx, fernetstore.RowRef(id), value)
			}
			if err != nil {
				return rowError(err, id, info.Table, "updated")
			}
			expiry := "it kept its expiry (keyward list shows it)"
			switch {
			case !setExpiry:
				if _, ok := info.Columns["expires"]; !ok {
					expiry = "the table has no expiry column"
				}
			case exp.IsZero():
				expiry = "it does not expire"
			default:
				expiry = "it expires " + formatTime(exp)
			}
			fmt.Fprintf(a.stderr, "updated row %s of table %s: a new value under ENCRYPTION_KEY; %s\n", id, info.Table, expiry)
			if !exp.IsZero() && !exp.After(time.Now()) {
				fmt.Fprintf(a.stderr, "warning: --expires %s is in the past: the row is already expired\n", formatTime(exp))
			}
			return nil
		},
	}
	c.Flags().StringVar(&expires, "expires", "", "new expiry: RFC 3339, YYYY-MM-DD (00:00 UTC), or none to clear it (default: keep the row's)")
	return c
}

func (a *app) deleteCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "delete ID",
		Short: "Delete row ID (no confirmation; says on stderr what it deleted)",
		Long: `Delete row ID (as list shows it: an integer, or a UUID or other text id) from
the table, without asking: scripts run it, and the row's value is gone with
it (there is no undo; keyward list first if unsure). What was deleted is said
on stderr. Services resolving db:ID get not found once their caches let the
value go. It needs no ENCRYPTION_KEY. A row that does not exist is exit 1.`,
		Args:              takes(1, "the row id", "keyward delete ID"),
		ValidArgsFunction: cobra.NoFileCompletions,
		RunE: func(cmd *cobra.Command, args []string) error {
			id := args[0]
			s, err := a.openSchemaStore()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			info, err := a.describe(ctx, s)
			if err != nil {
				return err
			}
			if err := s.Delete(ctx, fernetstore.RowRef(id)); err != nil {
				return rowError(err, id, info.Table, "deleted")
			}
			fmt.Fprintf(a.stderr, "deleted row %s of table %s (db:%s no longer resolves)\n", id, info.Table, fernetstore.RowRef(id))
			return nil
		},
	}
}

// describe reads the table before a row command, so that what is wrong
// with the table (exit 3) is told apart from what is wrong with the id the
// operator gave (exit 2): the store reports both as ErrInvalidRef.
func (a *app) describe(ctx context.Context, s *fernetstore.Store) (fernetstore.TableInfo, error) {
	info, err := s.Describe(ctx)
	if err != nil {
		return info, classify(err)
	}
	if info.Table == "" {
		info.Table = a.tableName()
	}
	return info, nil
}

// rowError is the exit of update or delete of row id once the table is
// known to be usable: a missing row, or one another table's foreign key
// still points to, is a finding (1); an id the store refuses a usage error
// (2); the rest as classify says.
func rowError(err error, id, table, done string) error {
	switch secrets.CodeOf(err) {
	case secrets.CodeNotFound:
		return errorf(exitFindings, "no row %s in table %s: keyward list shows the ids; nothing was %s", id, table, done)
	case secrets.CodeInvalidRef:
		return withCode(exitUsage, err)
	}
	if stillReferenced(err) {
		return errorf(exitFindings, "%v\nrow %s of table %s is still referenced through a foreign key (a bot's api_key_id, say): point those rows at another key, or clear them, first; nothing was %s", err, id, table, done)
	}
	return classify(err)
}

// stillReferenced reports whether err is a foreign key refusing to let a
// row go: PostgreSQL's foreign_key_violation, MySQL's ER_ROW_IS_REFERENCED
// (2), or SQLite's constraint error when its foreign keys are on.
func stillReferenced(err error) bool {
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		return pg.Code == "23503"
	}
	var my *mysql.MySQLError
	if errors.As(err, &my) {
		return my.Number == 1451 || my.Number == 1217
	}
	return strings.Contains(err.Error(), "FOREIGN KEY constraint failed")
}
