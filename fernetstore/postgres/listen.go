package postgres

import (
	"context"
	"database/sql"
	"fmt"
	"time"

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
		// A connection quiet for quietPing is pinged: one that silently
		// stopped carrying data (a proxy, a half-open TCP connection)
		// would otherwise lose every notification unnoticed. A read
		// timeout leaves pgx's connection usable.
		wctx, cancel := context.WithTimeout(ctx, quietPing)
		n, err := pc.WaitForNotification(wctx)
		cancel()
		if err != nil {
			if ctx.Err() != nil || wctx.Err() == nil || pc.IsClosed() {
				return err
			}
			pctx, cancel := context.WithTimeout(ctx, pingTimeout)
			err := pc.Ping(pctx)
			cancel()
			if err != nil {
				return fmt.Errorf("the listening connection did not answer a ping: %w", err)
			}
			continue
		}
		if n != nil && n.Channel == channel {
			note(n.Payload)
		}
	}
}

// quietPing and pingTimeout: see listen (variables for the tests).
var (
	quietPing   = 15 * time.Second
	pingTimeout = 5 * time.Second
)
