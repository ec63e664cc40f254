// Package connect rewrites the errors of connecting to a database that
// fernetstore/postgres, fernetstore/mysql or fernetstore/sqlite opened, so
// that no driver's or server's text quotes the DSN's user, password or
// parameters, keeping what callers test with errors.As and errors.Is (see
// fernetstore.OpenDB), and so that a missing SQLite file is named.
package connect

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
)

// Connector makes the connections of a database a database package opened
// and rewrites the errors of connecting with Describe: Where says where it
// connects in words safe to print.
type Connector struct {
	driver.Connector
	Where    string
	Describe func(where string, err error) error
}

// Connect connects, rewriting a failure with Describe.
func (c *Connector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, c.Describe(c.Where, err)
	}
	return conn, nil
}

// Close closes the driver's connector if it has something to close
// (database/sql calls it from DB.Close).
func (c *Connector) Close() error {
	if cl, ok := c.Connector.(io.Closer); ok {
		return cl.Close()
	}
	return nil
}

// connectError is a failure to connect, in words that hold no part of the
// DSN but the host, port and database name. err keeps what callers test: a
// driver's error rebuilt with a fixed message, a network error, a context
// error; its text is not part of msg unless it is known to be safe.
type connectError struct {
	msg string
	err error
}

func (e *connectError) Error() string { return e.msg }
func (e *connectError) Unwrap() error { return e.err }

// Connecting marks a failure to connect for errors.As with the interface
// interface{ Connecting() bool }, so a caller outside fernetstore can tell
// a server's refusal while connecting from one of a query.
func (e *connectError) Connecting() bool { return true }

// Error is a failure to connect described by msg, which must hold
// nothing of the DSN but what Where holds; errors.As and errors.Is reach err.
func Error(msg string, err error) error { return &connectError{msg: msg, err: err} }

// Common describes the failures every network driver shares: a
// context ending, a network error, a TLS certificate refused. Their texts
// hold addresses and certificate names, which come from the parsed host.
func Common(where string, err error) error {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return Error(fmt.Sprintf("cannot connect to %s: timed out", where), context.DeadlineExceeded)
	case errors.Is(err, context.Canceled):
		return Error(fmt.Sprintf("cannot connect to %s: canceled", where), context.Canceled)
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return Error(fmt.Sprintf("cannot connect to %s: %v", where, dnsErr), dnsErr)
	}
	var opErr *net.OpError
	if errors.As(err, &opErr) {
		return Error(fmt.Sprintf("cannot connect to %s: %v", where, opErr), opErr)
	}
	var certErr *tls.CertificateVerificationError
	if errors.As(err, &certErr) {
		return Error(fmt.Sprintf("cannot connect to %s: %v", where, certErr), certErr)
	}
	var hostErr x509.HostnameError
	if errors.As(err, &hostErr) {
		return Error(fmt.Sprintf("cannot connect to %s: %v", where, hostErr), hostErr)
	}
	var invalidErr x509.CertificateInvalidError
	if errors.As(err, &invalidErr) {
		return Error(fmt.Sprintf("cannot connect to %s: %v", where, invalidErr), invalidErr)
	}
	var authErr x509.UnknownAuthorityError
	if errors.As(err, &authErr) {
		return Error(fmt.Sprintf("cannot connect to %s: %v", where, authErr), authErr)
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return Error(fmt.Sprintf("cannot connect to %s: the server closed the connection", where), io.ErrUnexpectedEOF)
	}
	// The innermost error's type says what kind of failure it was; its
	// text may quote the DSN.
	inner := err
	for {
		next := errors.Unwrap(inner)
		if next == nil {
			break
		}
		inner = next
	}
	return Error(fmt.Sprintf("cannot connect to %s (%T; the driver's message is not shown, as it may quote the DSN)", where, inner), nil)
}
