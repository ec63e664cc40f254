// Package followmark marks a context as resolving a ref that an entry
// named (see secrets.Follower). The driver core sets the mark and refuses
// a chain under it; the cache reads it so that a follow never waits on a
// fetch already in flight: two entries naming each other, resolved at the
// same time, would each wait on the other's fetch until the fetch timeout.
package followmark

import "context"

type key struct{}

// Mark returns ctx marked as a follow.
func Mark(ctx context.Context) context.Context {
	return context.WithValue(ctx, key{}, true)
}

// Marked reports whether ctx is marked as a follow.
func Marked(ctx context.Context) bool {
	v, _ := ctx.Value(key{}).(bool)
	return v
}
