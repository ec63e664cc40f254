package main

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"testing"
	"time"

	secrets "github.com/keyward/secrets"
	"github.com/keyward/secrets/cache"
)

// fixedKeys is a backend holding fixed values by ref, standing in for a
// priced one (AWS Secrets Manager) under its scheme.
type fixedKeys map[string]string

func (f fixedKeys) Resolve(_ context.Context, ref string) (secrets.Secret, error) {
	if v, ok := f[ref]; ok {
		return secrets.NewSecret(v), nil
	}
	return secrets.Secret{}, &secrets.Error{Op: "resolve", Backend: "fixed", Ref: ref, Code: secrets.CodeNotFound, Reason: "no such entry"}
}

// costSeries are the cost meter's series of one scheme on /metrics.
type costSeries struct{ resolve, batch, version, avoided, cost string }

func costSeriesOf(scheme string) costSeries {
	calls := func(kind string) string {
		return fmt.Sprintf(`keyward_backend_calls_total{kind=%q,scheme=%q}`, kind, scheme)
	}
	return costSeries{calls("resolve"), calls("batch"), calls("version"),
		fmt.Sprintf(`keyward_backend_calls_avoided_total{scheme=%q}`, scheme),
		fmt.Sprintf(`keyward_backend_cost_usd_total{scheme=%q}`, scheme)}
}

// TestMetricsCostMeter: /metrics exports the cache's cost meter (issue 13
// item 4), and its figures move as chats happen: a miss adds a resolve call
// and its price, a hit adds an avoided call and costs nothing; the figures
// are the cache's own Stats().Backends; an operator's prices= price and the
// default list price (awssm, $0.05 per 10,000 calls) both count.
func TestMetricsCostMeter(t *testing.T) {
	const awsKey = "sk-ant-metered-aws-0123456789abcdef"
	s := startWith(t, map[string]string{
		// db: at an operator's price of $100 per 10,000 calls (one cent a
		// call); awssm: the default list price.
		"KEYWARD_CONFIG": "db = fernet://; cache = ttl=1h&prices=db:100",
		"CHAT_RATE":      "1000", "CHAT_BURST": "1000",
	}, map[string]secrets.KeyResolver{"awssm": fixedKeys{"chat/bots/metered": awsKey}})
	c, ok := secrets.Find[*cache.Cache](s.stack)
	if !ok {
		t.Fatal("the stack has no cache")
	}
	db, aws := costSeriesOf("db"), costSeriesOf("awssm")
	scrape := func() map[string]float64 {
		t.Helper()
		m := scrapeMetrics(t, "http://"+s.addr)
		// The exported figures are the cache's: read at scrape time.
		st := c.Stats().Backends
		for scheme, series := range map[string]costSeries{"db": db, "awssm": aws} {
			b, ok := st[scheme]
			if !ok {
				continue
			}
			for name, want := range map[string]float64{series.resolve: float64(b.Calls["resolve"]), series.batch: float64(b.Calls["batch"]),
				series.version: float64(b.Calls["version"]), series.avoided: float64(b.Avoided), series.cost: b.Cost} {
				if got, ok := m[name]; !ok || math.Abs(got-want) > 1e-12 {
					t.Errorf("/metrics: %s = %v (present %v), want the cache's %v", name, got, ok, want)
				}
			}
		}
		return m
	}
	chat := func(id string) {
		t.Helper()
		if code, body := s.post(t, "/api/chat/"+id, `{"message":"hi"}`); code != http.StatusOK {
			t.Fatalf("chat with bot %s: %d %v", id, code, body)
		}
	}
	type delta struct{ resolve, batch, version, avoided, cost float64 }
	want := func(step string, series costSeries, before, after map[string]float64, d delta) {
		t.Helper()
		for name, w := range map[string]float64{series.resolve: d.resolve, series.batch: d.batch, series.version: d.version, series.avoided: d.avoided, series.cost: d.cost} {
			if got := after[name] - before[name]; math.Abs(got-w) > 1e-12 {
				t.Errorf("%s: %s moved by %v, want %v", step, name, got, w)
			}
		}
	}

	// At start: the warm-up fetched the seeded db:1 and answered the
	// ResolveMany after it from the cache.
	m0 := scrape()
	for _, name := range []string{db.resolve, db.batch, db.version, db.avoided, db.cost} {
		if _, ok := m0[name]; !ok {
			t.Errorf("/metrics lacks %s", name)
		}
	}
	fetched := m0[db.resolve] + m0[db.batch] + m0[db.version]
	if fetched < 1 || m0[db.avoided] < 1 {
		t.Errorf("after the warm-up: %v db calls and %v avoided, want at least 1 each", fetched, m0[db.avoided])
	}
	if want := fetched * 100 / 10000; math.Abs(m0[db.cost]-want) > 1e-12 {
		t.Errorf("%s = %v after %v calls at $100 per 10,000, want %v", db.cost, m0[db.cost], fetched, want)
	}

	// A hit: one more avoided, no call, no cost.
	chat("1")
	m1 := scrape()
	want("a chat with the warmed bot 1", db, m0, m1, delta{avoided: 1})

	// A key stored after the warm-up: the first chat is a miss (a resolve
	// call at a cent), the second a hit.
	ctx := context.Background()
	key := "sk-ant-metered-" + randomHex(16)
	id, err := s.keys.Put(ctx, "metered", "anthropic", key, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.bots.add(ctx, "metered", "anthropic", "db:"+id); err != nil {
		t.Fatal(err)
	}
	s.standIn.accept(key)
	chat("3")
	m2 := scrape()
	want("the first chat with bot 3 (a miss)", db, m1, m2, delta{resolve: 1, cost: 0.01})
	chat("3")
	m3 := scrape()
	want("the second chat with bot 3 (a hit)", db, m2, m3, delta{avoided: 1})

	// awssm at the default list price: $0.05 per 10,000 calls.
	if err := s.bots.add(ctx, "aws", "anthropic", "awssm:chat/bots/metered"); err != nil {
		t.Fatal(err)
	}
	s.standIn.accept(awsKey)
	chat("4")
	m4 := scrape()
	want("the first chat with bot 4 (awssm, a miss)", aws, m3, m4, delta{resolve: 1, cost: 0.05 / 10000})
	want("the first chat with bot 4, for db:", db, m3, m4, delta{})
	chat("4")
	want("the second chat with bot 4 (awssm, a hit)", aws, m4, scrape(), delta{avoided: 1})

	s.assertNoKeys(t, key, awsKey)
}
