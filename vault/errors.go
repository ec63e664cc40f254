package vault

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"

	"github.com/hashicorp/vault/api"

	secrets "github.com/keyward/secrets"
	"github.com/keyward/secrets/driver"
)

// responseError carries Vault's *api.ResponseError for errors.As while
// printing only the status: api.ResponseError's own text holds Vault's error
// bodies and the request URL, which we do not pass on unfiltered.
type responseError struct{ err *api.ResponseError }

func (e *responseError) Error() string {
	msg := fmt.Sprintf("Vault answered HTTP %d", e.err.StatusCode)
	if known := knownMessage(e.err); known != "" {
		msg += " (" + known + ")"
	}
	return msg
}

func (e *responseError) Unwrap() error { return e.err }

// knownMessages are the Vault error texts we repeat because they help and
// hold nothing but themselves; anything else Vault says is dropped.
var knownMessages = []string{
	"permission denied",
	"Vault is sealed",
	"invalid token",
	"invalid role or secret ID",
	"invalid secret id",
	"unsupported path",
	"no handler for route",
	"upstream connect error",
	"rate limit quota exceeded",
	"local node not active but active cluster node not found",
}

func knownMessage(e *api.ResponseError) string {
	if e.RawError {
		return ""
	}
	for _, m := range e.Errors {
		for _, k := range knownMessages {
			if strings.Contains(strings.ToLower(m), strings.ToLower(k)) {
				return k
			}
		}
	}
	return ""
}

// netError carries a transport error for errors.As while printing a fixed
// description: url.Error's text repeats the request URL, which is harmless
// today but is not ours to promise stays so.
type netError struct {
	what string
	err  error
}

func (e *netError) Error() string { return e.what }
func (e *netError) Unwrap() error { return e.err }

// classify turns an error from the Vault client into a driver error with the
// right code; doing says what the Store was doing. A cancel is returned as
// itself, for the core's context rule.
func classify(doing string, err error) error {
	if errors.Is(err, context.Canceled) {
		return err
	}
	var re *api.ResponseError
	if errors.As(err, &re) {
		code, hint := statusCode(re.StatusCode)
		return driver.Wrap(code, &responseError{re}, "%s: %s", doing, hint)
	}
	var nerr net.Error
	switch {
	case errors.As(err, &nerr) && nerr.Timeout(), errors.Is(err, context.DeadlineExceeded):
		return driver.Wrap(secrets.CodeUnavailable, &netError{"timeout", err}, "%s: Vault did not answer in time", doing)
	case errors.As(err, &nerr), isConnError(err):
		return driver.Wrap(secrets.CodeUnavailable, &netError{"connection failed", err}, "%s: cannot reach Vault (check VAULT_ADDR and that the server is up)", doing)
	}
	// Anything else (a TLS setup error, a body that is not JSON) is cut to
	// its type: its text might quote a response.
	return driver.Errorf(secrets.CodeUnavailable, "%s: request to Vault failed (%T)", doing, err)
}

func isConnError(err error) bool {
	var op *net.OpError
	var dns *net.DNSError
	return errors.As(err, &op) || errors.As(err, &dns) ||
		// go-retryablehttp gives up with a plain error naming the attempts.
		strings.Contains(err.Error(), "giving up after")
}

// statusCode maps an HTTP status from Vault to a code and a safe hint.
func statusCode(status int) (secrets.Code, string) {
	switch {
	case status == http.StatusNotFound:
		return secrets.CodeNotFound, "no secret at this path"
	case status == http.StatusForbidden, status == http.StatusUnauthorized:
		return secrets.CodePermission, "Vault denied access: the token's policies do not allow reading this path, or the token expired or was revoked"
	case status == http.StatusTooManyRequests:
		return secrets.CodeUnavailable, "Vault is rate limiting requests"
	case status == http.StatusServiceUnavailable:
		return secrets.CodeUnavailable, "Vault is sealed or in maintenance"
	case status == http.StatusPreconditionFailed:
		return secrets.CodeUnavailable, "Vault standby is not yet consistent"
	case status >= 500:
		return secrets.CodeUnavailable, "Vault server error"
	case status == http.StatusBadRequest:
		return secrets.CodeInvalidRef, "Vault rejected the request"
	}
	return secrets.CodeUnknown, "unexpected answer from Vault"
}

// isStatus reports whether err is a Vault answer with that HTTP status.
func isStatus(err error, status int) bool {
	var re *api.ResponseError
	return errors.As(err, &re) && re.StatusCode == status
}
