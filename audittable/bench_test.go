package audittable_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	secrets "github.com/keyward/secrets"
	"github.com/keyward/secrets/audittable"
	"github.com/keyward/secrets/fernetstore"
	"github.com/keyward/secrets/secretstest"
)

// BenchmarkAuditTable measures what audit costs on the request path: a
// resolve through the audit decorator with no auditor work (discard), and
// with the table auditor (SQLite), whose Audit only queues the event. The
// queue is as large as the run, so no event is dropped and the writer's
// work shows only as the CPU it shares. Audit alone is the call itself.
func BenchmarkAuditTable(b *testing.B) {
	fake := new(secretstest.Fake)
	fake.Set("k", "v")
	ctx := secrets.WithRequester(context.Background(), "bot-1")
	newTable := func(b *testing.B) *audittable.Auditor {
		db, err := fernetstore.OpenDB("sqlite:" + filepath.Join(b.TempDir(), "bench.db"))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { db.Close() })
		a, err := audittable.New(db, &audittable.Options{CreateTable: true, QueueSize: 1 << 20, BatchSize: audittable.MaxBatchSize})
		if err != nil {
			b.Fatal(err)
		}
		return a
	}
	run := func(b *testing.B, to secrets.Auditor) {
		r := secrets.NewAudit(fake, to, nil)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := r.Resolve(ctx, "k"); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("resolve/no-auditor", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			fake.Resolve(ctx, "k")
		}
	})
	b.Run("resolve/audit-discard", func(b *testing.B) {
		run(b, secrets.AuditFunc(func(context.Context, secrets.AuditEvent) {}))
	})
	b.Run("resolve/audit-table", func(b *testing.B) {
		a := newTable(b)
		run(b, a)
		b.StopTimer()
		a.Close()
		if s := a.Stats(); s.Dropped != 0 {
			b.Logf("dropped %d", s.Dropped)
		}
	})
	b.Run("Audit/table", func(b *testing.B) {
		a := newTable(b)
		ev := secrets.AuditEvent{Time: time.Now(), Ref: "db:42", Backend: "fernet", Outcome: "ok", Requester: "bot-1"}
		b.ReportAllocs()
		for b.Loop() {
			a.Audit(ctx, ev)
		}
		b.StopTimer()
		a.Close()
	})
	b.Run("Audit/table-parallel", func(b *testing.B) {
		a := newTable(b)
		ev := secrets.AuditEvent{Time: time.Now(), Ref: "db:42", Backend: "fernet", Outcome: "ok", Requester: "bot-1"}
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				a.Audit(ctx, ev)
			}
		})
		b.StopTimer()
		a.Close()
	})
}
