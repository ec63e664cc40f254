package awssm

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials/processcreds"
	"github.com/aws/smithy-go"

	secrets "github.com/keyward/secrets"
)

// TestNoAnswerCut feeds classify errors shaped like the SDK's (no HTTP
// response) that quote a value, and checks the value is gone from every
// error in the chain while the code and the context errors survive.
func TestNoAnswerCut(t *testing.T) {
	const value = "sk-aws-secret-noanswer-7f3a"
	op := func(err error) error {
		return &smithy.OperationError{ServiceID: "Secrets Manager", OperationName: "GetSecretValue", Err: err}
	}
	cases := []struct {
		name   string
		err    error
		code   error
		ctxErr error
	}{
		{"ProcessParse", op(fmt.Errorf("get identity: %w", fmt.Errorf("failed to refresh cached credentials, %w",
			&processcreds.ProviderError{Err: fmt.Errorf("parse failed of process output: %s", value)}))),
			secrets.ErrPermission, nil},
		{"ProcessTimeout", op(fmt.Errorf("get identity: %w", &processcreds.ProviderError{
			Err: fmt.Errorf("credential process timed out: %s: %w", value, context.DeadlineExceeded)})),
			secrets.ErrPermission, context.DeadlineExceeded},
		{"Signing", op(&v4.SigningError{Err: fmt.Errorf("failed to retrieve credentials: %s", value)}),
			secrets.ErrPermission, nil},
		// Web identity: STS's own error inside, with a message and a
		// response; it must not pass for Secrets Manager's answer.
		{"STSInsideCredentials", op(fmt.Errorf("get identity: %w", &smithy.GenericAPIError{
			Code: "InvalidIdentityToken", Message: value})), secrets.ErrPermission, nil},
		{"Canceled", op(fmt.Errorf("send: %s: %w", value, context.Canceled)),
			secrets.ErrUnavailable, context.Canceled},
		{"Deadline", op(fmt.Errorf("send: %s: %w", value, context.DeadlineExceeded)),
			secrets.ErrUnavailable, context.DeadlineExceeded},
		{"Other", op(fmt.Errorf("resolve endpoint: %s", value)), secrets.ErrUnavailable, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := classify("GetSecretValue", c.err)
			if !errors.Is(err, c.code) {
				t.Errorf("got %v, want %v", err, c.code)
			}
			if c.ctxErr != nil && !errors.Is(err, c.ctxErr) {
				t.Errorf("errors.Is(%v) fails on %v", c.ctxErr, err)
			}
			text := fmt.Sprintf("%v %+v %#v", err, err, err)
			for e := err; e != nil; e = errors.Unwrap(e) {
				text += " " + e.Error()
			}
			if strings.Contains(text, value) {
				t.Errorf("the value survives: %s", text)
			}
			var oe *smithy.OperationError
			if errors.As(err, &oe) {
				t.Error("errors.As reaches the SDK error")
			}
			var api smithy.APIError
			if errors.As(err, &api) {
				t.Errorf("errors.As reaches an API error %q", api.ErrorCode())
			}
		})
	}
}
