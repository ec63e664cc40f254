package cache_test

import (
	"context"
	"testing"
	"time"

	"go.uber.org/goleak"

	secrets "github.com/keyward/secrets"
	"github.com/keyward/secrets/cache"
	"github.com/keyward/secrets/secretstest"
)

// deaf is a backend that ignores its context: its calls return only when
// the test releases them.
type deaf struct {
	*secretstest.Fake
	started chan struct{}
	release chan struct{}
}

func (d *deaf) Resolve(ctx context.Context, ref string) (secrets.Secret, error) {
	d.started <- struct{}{}
	<-d.release
	return d.Fake.Resolve(ctx, ref)
}

// Close returns even when a backend call ignores the cancellation; the
// call's goroutine finishes on its own once the backend returns.
func TestCloseIsBoundedWhenTheBackendIgnoresCancellation(t *testing.T) {
	d := &deaf{Fake: new(secretstest.Fake), started: make(chan struct{}), release: make(chan struct{})}
	ref := d.Set("bot", "sk-ant-test-"+token())
	c := cache.New(d, &cache.Options{FetchTimeout: 10 * time.Millisecond, Now: newClock().Now})
	res := make(chan error, 1)
	go func() {
		_, err := c.Resolve(context.Background(), ref)
		res <- err
	}()
	<-d.started
	closed := make(chan struct{})
	go func() {
		c.Close()
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		close(d.release)
		<-closed
		t.Fatal("Close waited for a backend call that ignores its context")
	}
	close(d.release)
	<-res // the caller is answered once the backend returns
	goleak.VerifyNone(t)
}
