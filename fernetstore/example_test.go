package fernetstore_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/keyward/secrets/fernetstore"
	_ "github.com/keyward/secrets/fernetstore/sqlite" // the database the host uses: sqlite: DSNs
)

func Example() {
	ctx := context.Background()
	// In a service: fernetstore.KeyRingFromEnv() and OpenDB(os.Getenv("DATABASE_URL")),
	// with the package of its database imported (fernetstore/sqlite here).
	ring, err := fernetstore.ParseKeyRing("cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=")
	if err != nil {
		log.Fatal(err)
	}
	db, err := fernetstore.OpenDB("sqlite::memory:")
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()

	store := fernetstore.New(db, ring, nil)
	if err := store.CreateSchema(ctx); err != nil { // explicit, never implicit
		log.Fatal(err)
	}
	id, err := store.Put(ctx, "support-bot", "anthropic", "sk-ant-example", time.Time{})
	if err != nil {
		log.Fatal(err)
	}
	secret, err := store.Resolve(ctx, id)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(id, secret, secret.Version, secret.Reveal() == "sk-ant-example")

	entries, _ := store.List(ctx)
	for _, e := range entries {
		fmt.Println(e.ID, e.Name, e.Provider, e.State)
	}
	// Output:
	// 1 [redacted] primary true
	// 1 support-bot anthropic encrypted-primary
}

func ExampleStore_Rotate() {
	ctx := context.Background()
	oldKey := "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4="
	newKey := "aGVsbG8td29ybGQtaGVsbG8td29ybGQtaGVsbG8td28="
	db, _ := fernetstore.OpenDB("sqlite::memory:")
	defer db.Close()

	before, _ := fernetstore.ParseKeyRing(oldKey)
	old := fernetstore.New(db, before, nil)
	old.CreateSchema(ctx)
	for _, v := range []string{"sk-1", "sk-2", "sk-3"} {
		old.Put(ctx, "bot", "openai", v, time.Time{})
	}

	// ENCRYPTION_KEY=new, ENCRYPTION_KEY_PREVIOUS=old, then rotate.
	after, _ := fernetstore.ParseKeyRing(newKey, oldKey)
	report, err := fernetstore.New(db, after, nil).Rotate(ctx, &fernetstore.WalkOptions{BatchSize: 500})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("scanned %d, rotated %d, skipped %d, undecryptable %d\n",
		report.Scanned, report.Done, report.Skipped, report.Undecryptable)
	// Output:
	// scanned 3, rotated 3, skipped 0, undecryptable 0
}

func ExampleClassify() {
	ring, _ := fernetstore.ParseKeyRing("cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=")
	token, _ := ring.Encrypt([]byte("sk-ant-example"))
	fmt.Println(fernetstore.Classify(token))
	fmt.Println(fernetstore.Classify(token[:40]))
	fmt.Println(fernetstore.Classify("sk-ant-api03-legacy"))
	// Output:
	// token
	// malformed-token
	// plaintext
}
