package fernetstore

import (
	"context"
	"testing"

	secrets "github.com/keyward/secrets"
)

// BenchmarkResolveReference measures a reference row (api_key NULL,
// key_env_var set) resolved through a Stack without a cache, next to its
// two parts in the same run: the row read alone (the prepared SELECT by id
// the store makes) and the env ref resolved through the same stack. The
// claim to check: reference ≈ row read + env.
//
//	go test ./fernetstore -run '^$' -bench 'ResolveReference' -count 10 | benchstat -col /part -
func BenchmarkResolveReference(b *testing.B) {
	db := openTestDB(b, SQLite)
	table := "kw_refbench"
	if _, err := db.Exec(pythonDDL(SQLite, table)); err != nil {
		b.Fatal(err)
	}
	b.Setenv("KW_REFBENCH_KEY", string(value100()))
	var id string
	for i := range 1000 {
		got := insertPy(b, db, SQLite, table, nil, "KW_REFBENCH_KEY", nil, nil)
		if i == 500 {
			id = got
		}
	}
	store := New(db, mustRing(b, benchKey1), &Options{Table: table, RefColumns: []RefColumn{{"key_env_var", "env"}}})
	cfg, err := secrets.ParseConfig("env = env://")
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	st, err := secrets.OpenConfig(ctx, cfg, &secrets.StackOptions{Backends: map[string]secrets.KeyResolver{"db": store}})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	resolve := func(b *testing.B, ref string) {
		b.ReportAllocs()
		for b.Loop() {
			sec, err := st.Resolve(ctx, ref)
			if err != nil {
				b.Fatal(err)
			}
			sink = []byte(sec.Reveal()[:1])
		}
	}
	b.Run("part=reference", func(b *testing.B) { resolve(b, "db:"+id) })
	b.Run("part=env", func(b *testing.B) { resolve(b, "env:KW_REFBENCH_KEY") })
	b.Run("part=rowread", func(b *testing.B) {
		stmt, err := db.Prepare("SELECT api_key, expires_at, key_env_var FROM " + table + " WHERE id = ?")
		if err != nil {
			b.Fatal(err)
		}
		defer stmt.Close()
		b.ReportAllocs()
		for b.Loop() {
			var v, ref any
			var exp any
			if err := stmt.QueryRow(id).Scan(&v, &exp, &ref); err != nil {
				b.Fatal(err)
			}
		}
	})
}
