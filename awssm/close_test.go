package awssm_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"testing"

	"go.uber.org/goleak"

	secrets "github.com/keyward/secrets"
	"github.com/keyward/secrets/awssm"
	"github.com/keyward/secrets/internal/testenv"
)

// TestCloseReleasesConnections: a Store opened from the environment makes
// its own HTTP client, and Close releases that client's keep-alive
// connections, whose read and write loops would otherwise outlive it (until
// the transport's 90 s idle timeout), one set per Store a host opens and
// closes. Through the real SDK, against the in-process fake, which keeps
// connections alive as AWS does, and against moto_server, whose werkzeug
// server closes every connection after its answer (so there it checks that
// Close exists and leaves nothing else behind).
func TestCloseReleasesConnections(t *testing.T) {
	t.Run("fake", func(t *testing.T) {
		f := newFake(t)
		var names, values []string
		for i := range 4 {
			names, values = append(names, fmt.Sprintf("kw/close-%d-%s", i, token())), append(values, secretValue())
			f.put(names[i], values[i])
		}
		closeRounds(t, f.srv.URL, names, values)
	})
	t.Run("moto", func(t *testing.T) {
		endpoint := testenv.MotoServer(t)
		setup := &moto{endpoint: endpoint, client: newClient(endpoint, 1, http.DefaultTransport)}
		var names, values []string
		for i := range 4 {
			names, values = append(names, fmt.Sprintf("kw-close-%d-%s", i, token())), append(values, secretValue())
			setup.create(t, names[i], values[i])
		}
		http.DefaultTransport.(*http.Transport).CloseIdleConnections()
		closeRounds(t, endpoint, names, values)
	})
}

// closeRounds opens a Store from the environment (pointed at endpoint) twice,
// resolves names with several connections, closes it, and fails if any
// goroutine started after the servers is left.
func closeRounds(t *testing.T, endpoint string, names, values []string) {
	setAWSEnv(t, endpoint)
	// Taken after the server and the setup: only what the Store starts counts.
	opt := goleak.IgnoreCurrent()
	for round := range 2 {
		r, err := secrets.Open(context.Background(), "awssm://?region=us-east-1")
		if err != nil {
			t.Fatal(err)
		}
		// Concurrent resolves open several connections; a batch too.
		testenv.ResolveConcurrently(t, r, names, values)
		res, err := r.(secrets.BatchResolver).ResolveMany(context.Background(), names)
		if err != nil || res[0].Err != nil {
			t.Fatalf("round %d: ResolveMany: %v, %v", round, err, res[0].Err)
		}
		if c, ok := r.(io.Closer); !ok {
			t.Errorf("round %d: %T has no Close", round, r)
		} else if err := c.Close(); err != nil {
			t.Fatalf("round %d: Close: %v", round, err)
		}
		if err := goleak.Find(opt); err != nil {
			t.Fatalf("round %d: goroutines left after Close:\n%v", round, err)
		}
	}
}

// idleCounter is a transport that counts calls to CloseIdleConnections.
type idleCounter struct {
	http.RoundTripper
	closes atomic.Int32
}

func (c *idleCounter) CloseIdleConnections() { c.closes.Add(1) }

// TestCloseLeavesHostClientAlone: a Store given a client by the host never
// closes the host's connections: that client may serve other Stores.
func TestCloseLeavesHostClientAlone(t *testing.T) {
	f := newFake(t)
	name, v := "kw/"+token(), secretValue()
	f.put(name, v)
	tr := &idleCounter{RoundTripper: http.DefaultTransport}
	client := newClient(f.srv.URL, 1, tr)
	store := awssm.New(client, nil)
	if _, err := store.Resolve(context.Background(), name); err != nil {
		t.Fatal(err)
	}
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}
	if n := tr.closes.Load(); n != 0 {
		t.Errorf("Close closed the host's idle connections (%d calls)", n)
	}
	if s, err := awssm.New(client, nil).Resolve(context.Background(), name); err != nil || s.Reveal() != v {
		t.Fatalf("the host's client after Close: (%d bytes, %v)", s.Len(), err)
	}
}
