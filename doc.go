// Package secrets is keyward's contract: one KeyResolver interface that every
// backend satisfies, a Secret that will not print its value, one error model,
// a Mux that routes "scheme:ref" to a backend, and openers that build the
// whole stack from configuration.
//
// # Refs
//
// A ref given to a Mux is "scheme:backend-ref": "db:42", "env:ANTHROPIC_API_KEY",
// "awssm:arn:aws:secretsmanager:eu-west-1:123:secret:prod/anthropic#api_key"
// (everything after the first colon belongs to the backend, so an ARN keeps its
// colons). Backends that store documents take "#field" to pick one key of a
// JSON object, and some take "?name=value" options (awssm's ?stage=, vault's
// ?version=). A literal '#', '?' or '%' in a name is written %23, %3F, %25.
//
// # Errors
//
// Every error a backend returns is an *Error whose Code is one of ErrNotFound,
// ErrExpired, ErrPermission, ErrInvalidRef, ErrUndecryptable, ErrUnavailable or
// ErrUnknownScheme; test with errors.Is. The SDK's own error stays reachable
// with errors.As where its text cannot carry a value. Context errors pass
// through: errors.Is(err, context.Canceled) holds when the caller canceled.
// No error, log line or panic holds a secret value.
package secrets
