package main

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/keyward/secrets/fernetstore"
)

// bot is a row of the bots table. KeyRef is a keyward ref ("db:1",
// "env:OPENAI_API_KEY", "awssm:prod/anthropic#api_key"): the row never holds a key.
type bot struct {
	ID       int64
	Name     string
	Provider string
	KeyRef   string
}

type botStore struct {
	db      *sql.DB
	dialect fernetstore.Dialect
}

func (b *botStore) ph(n int) string {
	if b.dialect == fernetstore.Postgres {
		return fmt.Sprintf("$%d", n)
	}
	return "?"
}

func (b *botStore) createTable(ctx context.Context) error {
	id := "INTEGER PRIMARY KEY"
	switch b.dialect {
	case fernetstore.Postgres:
		id = "BIGSERIAL PRIMARY KEY"
	case fernetstore.MySQL:
		id = "BIGINT AUTO_INCREMENT PRIMARY KEY"
	}
	_, err := b.db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS bots (
	id `+id+`,
	name VARCHAR(200) NOT NULL,
	provider VARCHAR(50) NOT NULL,
	api_key_ref VARCHAR(1000) NOT NULL)`)
	return err
}

func (b *botStore) get(ctx context.Context, id int64) (bot, error) {
	r := bot{ID: id}
	err := b.db.QueryRowContext(ctx, "SELECT name, provider, api_key_ref FROM bots WHERE id = "+b.ph(1), id).
		Scan(&r.Name, &r.Provider, &r.KeyRef)
	return r, err
}

func (b *botStore) all(ctx context.Context) ([]bot, error) {
	rows, err := b.db.QueryContext(ctx, "SELECT id, name, provider, api_key_ref FROM bots ORDER BY id")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []bot
	for rows.Next() {
		var r bot
		if err := rows.Scan(&r.ID, &r.Name, &r.Provider, &r.KeyRef); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

func (b *botStore) add(ctx context.Context, name, provider, keyRef string) error {
	_, err := b.db.ExecContext(ctx, fmt.Sprintf("INSERT INTO bots (name, provider, api_key_ref) VALUES (%s, %s, %s)", b.ph(1), b.ph(2), b.ph(3)),
		name, provider, keyRef)
	return err
}

// setRef points a bot at another key ref: how a bot moves between backends.
func (b *botStore) setRef(ctx context.Context, id int64, keyRef string) error {
	_, err := b.db.ExecContext(ctx, fmt.Sprintf("UPDATE bots SET api_key_ref = %s WHERE id = %s", b.ph(1), b.ph(2)), keyRef, id)
	return err
}
