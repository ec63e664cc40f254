package fernetstore

import (
	"context"
	"errors"
	"math"
	"strconv"
	"strings"
	"testing"

	secrets "github.com/keyward/secrets"
)

// TestWalkOptionsBounds: BatchSize is 0 (the default) or 1 to MaxBatchSize,
// After is not negative; anything else is refused before any I/O with
// ErrInvalidRef and a reason naming the option, the range and an example.
// A huge BatchSize used to panic in makeslice (math.MaxInt) or try to
// allocate tens of gigabytes (1e9) for the batch buffer.
func TestWalkOptionsBounds(t *testing.T) {
	db := openTestDB(t, SQLite)
	s := New(db, mustRing(t, mustKey(t)), nil)
	ctx := context.Background()
	if err := s.CreateSchema(ctx); err != nil {
		t.Fatal(err)
	}
	fillRows(t, db, SQLite, "api_keys", nil, makeValues(3, "bounds"))
	for _, c := range []struct {
		name string
		opts WalkOptions
		want string // in the reason; "" means accepted
	}{
		{"max int", WalkOptions{BatchSize: math.MaxInt}, "BatchSize"},
		{"a billion", WalkOptions{BatchSize: 1_000_000_000}, "BatchSize"},
		{"one over", WalkOptions{BatchSize: MaxBatchSize + 1}, "BatchSize"},
		{"negative", WalkOptions{BatchSize: -1}, "BatchSize"},
		{"min int", WalkOptions{BatchSize: math.MinInt}, "BatchSize"},
		{"negative After", WalkOptions{After: "-1"}, "After"},
		{"text After on integer ids", WalkOptions{After: "abc"}, "After"},
		{"default", WalkOptions{}, ""},
		{"one", WalkOptions{BatchSize: 1}, ""},
		{"max", WalkOptions{BatchSize: MaxBatchSize}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			for _, walk := range []func(context.Context, *WalkOptions) (Report, error){s.Migrate, s.Rotate} {
				o := c.opts
				o.DryRun = true
				rep, err := walk(ctx, &o)
				if c.want == "" {
					if err != nil || rep.Scanned != 3 {
						t.Fatalf("%+v: scanned %d, %v", c.opts, rep.Scanned, err)
					}
					continue
				}
				if !errors.Is(err, secrets.ErrInvalidRef) {
					t.Fatalf("%+v: %v, want ErrInvalidRef", c.opts, err)
				}
				var e *secrets.Error
				errors.As(err, &e)
				for _, w := range []string{c.want, "such as"} {
					if !strings.Contains(e.Reason, w) {
						t.Errorf("%+v: reason %q does not say %q", c.opts, e.Reason, w)
					}
				}
				if c.want == "BatchSize" && !strings.Contains(e.Reason, "1 to "+strconv.Itoa(MaxBatchSize)) {
					t.Errorf("reason %q does not give the range", e.Reason)
				}
				if rep.Scanned != 0 {
					t.Errorf("%+v: %d rows scanned before the refusal", c.opts, rep.Scanned)
				}
			}
		})
	}
}
