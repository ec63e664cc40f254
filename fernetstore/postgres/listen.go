package postgres

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/keyward/secrets/fernetstore"
)

func init() { fernetstore.RegisterListener(listen) }

// listen LISTENs on channel over a connection of db of its own, taken from
// db's pool and discarded afterwards (it may still be subscribed), and
// passes each notification's payload to note.
func listen(ctx context.Context, db *sql.DB, channel string, ready func(), note func(string)) error {
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	err = conn.Raw(func(dc any) error {
		c, ok := dc.(*stdlib.Conn)
		if !ok {
			return fmt.Errorf("the database's connections are %T, not pgx's: watching needs a database opened through pgx (fernetstore.OpenDB, or sql.Open(\"pgx\", ...))", dc)
		}
		pc := c.Conn()
		if _, err := pc.Exec(ctx, "LISTEN "+pgx.Identifier{channel}.Sanitize()); err != nil {
			return err
		}
		ready()
		for {
			n, err := pc.WaitForNotification(ctx)
			if err != nil {
				return err
			}
			if n.Channel == channel {
				note(n.Payload)
			}
		}
	})
	// The connection is never handed back to the pool still listening.
	return errors.Join(err, driver.ErrBadConn)
}
