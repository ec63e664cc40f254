package secrets

import "context"

// Watcher is an optional ability of a backend: announcing which of its
// entries changed, so that a cache in front of it can keep values for a long
// time and still drop a changed one at once (fernetstore: LISTEN/NOTIFY on
// PostgreSQL, a change-log poll on MariaDB and SQLite). OpenConfig starts
// every configured backend's Watch, when the stack has a cache, with a
// handler that invalidates the cache's refs of that scheme.
type Watcher interface {
	// Watch reports changes to h until ctx ends or the backend is closed,
	// and then returns nil. It blocks, and reconnects by itself when its
	// connection drops: it returns an error only when the backend cannot
	// be watched at all (a configuration it cannot watch), never for a
	// connection that failed. Calls to h are made one at a time.
	Watch(ctx context.Context, h ChangeHandler) error
}

// ChangeHandler receives what a Watcher announces.
type ChangeHandler interface {
	// Changed reports the entries that changed (put, updated, deleted,
	// migrated, rotated), by their backend-local refs, as Resolve takes them
	// (fernetstore: RowRef of the row id), without #field or ?options: every
	// variant of such a ref is changed.
	Changed(refs []string)
	// Lost reports that the watcher can no longer vouch for what it has not
	// announced: every entry of the backend may have changed (its
	// connection dropped, or it just started watching). It is called once
	// each time a watch is established, before any Changed of that watch.
	Lost()
}

// VersionChecker is an optional ability of a backend: reading the current
// version of a secret without its value, in a call that costs less than
// fetching it (AWS DescribeSecret, Vault KV v2 metadata), so that a cache can
// check a long-lived entry cheaply. The version has the form the backend
// puts in Secret.Version: an entry whose Version differs from
// CurrentVersion's answer has changed.
type VersionChecker interface {
	CurrentVersion(ctx context.Context, ref string) (string, error)
}
