package postgres

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/keyward/secrets/fernetstore"
)

func init() { fernetstore.RegisterListener(listen) }

// listen LISTENs on channel over a connection of its own, made with the
// settings of db's connections (so a pool with a small MaxOpenConns loses
// nothing to the watch), and passes each notification's payload to note.
func listen(ctx context.Context, db *sql.DB, channel string, ready func(), note func(string)) error {
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	var cfg *pgx.ConnConfig
	err = conn.Raw(func(dc any) error {
		c, ok := dc.(*stdlib.Conn)
		if !ok {
			return fmt.Errorf("the database's connections are %T, not pgx's: watching needs a database opened through pgx (fernetstore.OpenDB, or sql.Open(\"pgx\", ...))", dc)
		}
		cfg = c.Conn().Config().Copy()
		// The copy would deliver to the pooled connection's buffer.
		cfg.OnNotification = nil
		return nil
	})
	conn.Close()
	if err != nil {
		return err
	}
	pc, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return err
	}
	defer pc.Close(context.WithoutCancel(ctx))
	if _, err := pc.Exec(ctx, "LISTEN "+pgx.Identifier{channel}.Sanitize()); err != nil {
		return err
	}
	ready()
	for {
		n, err := pc.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		if n != nil && n.Channel == channel {
			note(n.Payload)
		}
	}
}
