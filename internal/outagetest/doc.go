// Package outagetest holds tests that put keyward's stack in front of a real
// backend behind a network that fails the way real networks do (a loopback
// proxy that stops forwarding but keeps its connections open), so that what
// a caller sees during an outage is measured, not assumed. It has no code of
// its own; it exists so those tests can import every backend without an
// import cycle.
package outagetest
