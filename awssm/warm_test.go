package awssm_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/keyward/secrets/awssm"
	"github.com/keyward/secrets/cache"
)

// TestCacheWarm checks the path the issue asks for: the cache's Warm finds
// the store's batch ability and fills itself with BatchGetSecretValue calls,
// 20 secrets a call, one fetch for both #fields of a secret; resolves then
// hit the cache without calling AWS.
func TestCacheWarm(t *testing.T) {
	f := newFake(t)
	var refList, want []string
	for i := range 45 {
		name, key := fmt.Sprintf("kw/warm-%02d", i), secretValue()
		doc, _ := json.Marshal(map[string]string{"api_key": key, "org": "org-1"})
		f.put(name, string(doc))
		refList = append(refList, name+"#api_key", name+"#org")
		want = append(want, key, "org-1")
	}
	store := awssm.New(newClient(f.srv.URL, 1, http.DefaultTransport), nil)
	c := cache.New(store, &cache.Options{TTL: time.Hour, Jitter: -1})
	defer c.Close()
	ctx := context.Background()
	if err := c.Warm(ctx, refList); err != nil {
		t.Fatal(err)
	}
	if b, g := f.count("BatchGetSecretValue"), f.count("GetSecretValue"); b != 3 || g != 0 {
		t.Fatalf("Warm of 90 refs of 45 secrets made %d batch and %d single calls, want 3 and 0", b, g)
	}
	for i, r := range refList {
		s, err := c.Resolve(ctx, r)
		if err != nil || s.Reveal() != want[i] {
			t.Fatalf("Resolve(%q) after Warm: %v", r, err)
		}
	}
	if b, g := f.count("BatchGetSecretValue"), f.count("GetSecretValue"); b != 3 || g != 0 {
		t.Errorf("resolves after Warm called AWS: %d batch, %d single calls in all", b, g)
	}
}
