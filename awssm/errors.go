package awssm

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/aws/smithy-go"

	secrets "github.com/keyward/secrets"
	"github.com/keyward/secrets/driver"
)

// errorCodeMap classifies the error codes Secrets Manager and the AWS
// front end answer with. It matches the code, never the HTTP status: moto
// answers ResourceNotFoundException with 404 where AWS answers 400.
var errorCodeMap = map[string]secrets.Code{
	"ResourceNotFoundException": secrets.CodeNotFound,

	"AccessDeniedException":       secrets.CodePermission,
	"AccessDenied":                secrets.CodePermission,
	"UnrecognizedClientException": secrets.CodePermission,
	"InvalidClientTokenId":        secrets.CodePermission,
	"InvalidSignatureException":   secrets.CodePermission,
	"SignatureDoesNotMatch":       secrets.CodePermission,
	"IncompleteSignature":         secrets.CodePermission,
	"MissingAuthenticationToken":  secrets.CodePermission,
	"ExpiredTokenException":       secrets.CodePermission,
	"ExpiredToken":                secrets.CodePermission,

	"ThrottlingException":         secrets.CodeUnavailable,
	"Throttling":                  secrets.CodeUnavailable,
	"TooManyRequestsException":    secrets.CodeUnavailable,
	"RequestLimitExceeded":        secrets.CodeUnavailable,
	"InternalServiceError":        secrets.CodeUnavailable,
	"InternalFailure":             secrets.CodeUnavailable,
	"ServiceUnavailable":          secrets.CodeUnavailable,
	"ServiceUnavailableException": secrets.CodeUnavailable,
	"RequestTimeout":              secrets.CodeUnavailable,
	"RequestTimeoutException":     secrets.CodeUnavailable,

	"DecryptionFailure": secrets.CodeUndecryptable,

	"InvalidParameterException": secrets.CodeInvalidRef,
}

// reasons say, for each code, what went wrong in words safe to log. The
// service's own message is never used: it comes from the response body.
var reasons = map[secrets.Code]string{
	secrets.CodeNotFound:      "no such secret in this account and region, or no version with that stage or id",
	secrets.CodePermission:    "the AWS credentials were refused or lack secretsmanager:GetSecretValue (and kms:Decrypt for a customer key) on this secret",
	secrets.CodeUnavailable:   "AWS Secrets Manager did not answer successfully after the SDK's retries",
	secrets.CodeUndecryptable: "Secrets Manager cannot decrypt the secret with its KMS key: check the key's policy and state",
	secrets.CodeInvalidRef:    "the service rejected the secret id, stage or version id as malformed",
	secrets.CodeUnknown:       "Secrets Manager refused the request",
}

const deletionReason = "the secret is scheduled for deletion: restore it (RestoreSecret) or point the ref at another secret"

// markedForDeletion recognises the InvalidRequestException that AWS ("it
// was marked for deletion") and moto ("currently marked deleted") answer for
// a secret scheduled for deletion.
func markedForDeletion(code, message string) bool {
	if code != "InvalidRequestException" {
		return false
	}
	m := strings.ToLower(message)
	return strings.Contains(m, "marked for deletion") || strings.Contains(m, "marked deleted")
}

// classify turns an error of an SDK call into a *secrets.Error for the
// core, which sets Op, Backend and Ref and applies the context rule.
//
// The returned error's text never holds anything the response body said.
// Service errors are replaced by a copy without their message (still found
// by errors.As as *types.ResourceNotFoundException, smithy.APIError, ...),
// deserialization errors are dropped (they keep a snapshot of the body),
// and errors with no response, credential failures first, are cut to a
// fixed text (see noAnswer and credentialsFailed).
func classify(operation string, err error) error {
	if credentialsFailed(err) {
		// Before the service-error cases: a credential provider that calls
		// STS, SSO or IMDS fails with that service's error (or body
		// snapshot) inside, which is not Secrets Manager's answer.
		return driver.Wrap(secrets.CodePermission, cutError(operation, "could not get credentials", err), "%s", credsReason)
	}
	attempts := 0
	var maxErr *retry.MaxAttemptsError
	if errors.As(err, &maxErr) {
		attempts = maxErr.Attempt
	}
	status, requestID := 0, ""
	var respErr *awshttp.ResponseError
	if errors.As(err, &respErr) {
		status, requestID = respErr.HTTPStatusCode(), cleanRequestID(respErr.ServiceRequestID())
	}

	var code secrets.Code
	var reason string
	var cause error
	var apiErr smithy.APIError
	var deserErr *smithy.DeserializationError
	switch {
	case errors.As(err, &apiErr):
		apiCode := cleanCode(apiErr.ErrorCode())
		var ok bool
		code, ok = errorCodeMap[apiCode]
		switch {
		case markedForDeletion(apiCode, apiErr.ErrorMessage()):
			code, reason = secrets.CodeNotFound, deletionReason
		case ok:
		case status >= 500 || apiErr.ErrorFault() == smithy.FaultServer:
			code = secrets.CodeUnavailable
		default:
			code = secrets.CodeUnknown
		}
		if reason == "" {
			reason = reasons[code]
		}
		cause = &serviceError{operation: operation, code: apiCode, status: status,
			requestID: requestID, attempts: attempts, api: redact(apiErr, apiCode)}
	case errors.As(err, &deserErr):
		// A body the SDK cannot decode: a proxy's HTML page, a truncated
		// answer. The SDK keeps a snapshot of the body in the error, and the
		// body of a GetSecretValue answer is the secret, so the cause goes.
		code = secrets.CodeUnavailable
		reason = "the answer could not be decoded; is the endpoint a Secrets Manager endpoint?"
		if status >= 500 || status == 429 {
			reason = reasons[code]
		}
		cause = &serviceError{operation: operation, status: status, requestID: requestID, attempts: attempts}
	case status != 0:
		// A response without a service error code: its body is not kept.
		code = secrets.CodeUnknown
		if status >= 500 || status == 429 {
			code = secrets.CodeUnavailable
		}
		reason = reasons[code]
		cause = &serviceError{operation: operation, status: status, requestID: requestID, attempts: attempts}
	default:
		// No response reached us: connection refused, DNS, TLS, an
		// endpoint that does not resolve. The SDK error's text is dropped,
		// as for credentials above: what the SDK raises before a response
		// is not ours to vet (credential providers, which quote what they
		// read, are the proven case), so only a fixed reason, the Go types
		// of the chain, and the few causes whose text cannot carry a value
		// survive (see noAnswer).
		code, reason, cause = noAnswer(operation, err)
	}
	return driver.Wrap(code, cause, "%s", reason)
}

// credsReason is what a resolve says when the SDK could not get credentials.
const credsReason = "cannot get AWS credentials: check AWS_PROFILE, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY and the rest of the credential chain " +
	"(the profile's credential_process, SSO login, web identity token, ECS or EC2 role)"

// noAnswer classifies an SDK error that came with no HTTP response and
// returns the cause to keep in its place: a *noAnswerError whose text is
// fixed, naming the operation, what failed and the Go types in the chain.
//
// errors.Is still matches context.Canceled and context.DeadlineExceeded
// (an HTTP client deadline; cutError does the same for credentials, say a
// credential_process timeout), and errors.As still finds the *net.OpError
// of a failed dial or I/O timeout, kept only when its cause is a syscall
// error, a resolver error or the net package's timeout, whose texts hold
// addresses and errno names, never a value.
// Nothing else of the SDK error is reachable.
func noAnswer(operation string, err error) (secrets.Code, string, error) {
	ne := cutError(operation, "request failed before an answer", err)
	if op := dialError(err); op != nil && ne.keep == nil {
		ne.keep = op
	}
	var nerr net.Error
	switch {
	case errors.As(err, &nerr) && nerr.Timeout(), errors.Is(err, context.DeadlineExceeded):
		ne.what = "timed out"
		return secrets.CodeUnavailable, operation + " got no answer from AWS Secrets Manager in time", ne
	case ne.keep != nil && ne.keep != context.Canceled:
		ne.what = "cannot connect"
		return secrets.CodeUnavailable, "cannot reach AWS Secrets Manager: check the network, AWS_REGION and AWS_ENDPOINT_URL", ne
	}
	return secrets.CodeUnavailable, operation + " got no answer from AWS Secrets Manager", ne
}

// credentialsFailed reports whether err is the SDK failing to get
// credentials: the auth middleware's "get identity" or the signer's
// "failed to retrieve credentials". The text is read, never kept.
func credentialsFailed(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "get identity") || strings.Contains(msg, "retrieve credentials")
}

// cutError returns a *noAnswerError for err that keeps only its Go types
// and, for errors.Is, the context error it wraps, if any.
func cutError(operation, what string, err error) *noAnswerError {
	ne := &noAnswerError{operation: operation, what: what, types: typeChain(err)}
	switch {
	case errors.Is(err, context.Canceled):
		ne.keep = context.Canceled
	case errors.Is(err, context.DeadlineExceeded):
		ne.keep = context.DeadlineExceeded
	}
	return ne
}

// dialError returns the *net.OpError in err's chain if its text is safe to
// keep: its cause is an errno, a resolver error or the net package's I/O
// timeout. A proxy's CONNECT refusal, for one, is an OpError carrying the
// proxy's status line, and is not kept.
func dialError(err error) *net.OpError {
	var op *net.OpError
	if !errors.As(err, &op) {
		return nil
	}
	var sys *os.SyscallError
	var dns *net.DNSError
	switch {
	case errors.As(op.Err, &sys), errors.As(op.Err, &dns), errors.Is(op.Err, os.ErrDeadlineExceeded):
		return op
	}
	return nil
}

// typeChain names the Go types of err and the errors it wraps, leaving out
// the anonymous wrappers of fmt.Errorf and errors.New: "*smithy.OperationError
// > *retry.MaxAttemptsError > ...". Type names are the SDK's, never data.
func typeChain(err error) string {
	var names []string
	var walk func(error)
	walk = func(err error) {
		if err == nil || len(names) >= 8 {
			return
		}
		switch name := fmt.Sprintf("%T", err); name {
		case "*fmt.wrapError", "*fmt.wrapErrors", "*errors.errorString":
		default:
			if len(names) == 0 || names[len(names)-1] != name {
				names = append(names, name)
			}
		}
		switch u := err.(type) {
		case interface{ Unwrap() error }:
			walk(u.Unwrap())
		case interface{ Unwrap() []error }:
			for _, e := range u.Unwrap() {
				walk(e)
			}
		}
	}
	walk(err)
	return strings.Join(names, " > ")
}

// noAnswerError stands for an SDK error that came with no response. Its
// text is fixed; it unwraps only to a cause known to be safe (a context
// error, or a dial's *net.OpError), nil otherwise.
type noAnswerError struct {
	operation string
	what      string
	types     string
	keep      error
}

func (e *noAnswerError) Error() string {
	s := e.operation + ": " + e.what
	if e.types != "" {
		s += " (" + e.types + ")"
	}
	return s
}

func (e *noAnswerError) Unwrap() error { return e.keep }

// withheld stands in for an error type or a request id that is not shaped
// like AWS's. Both come from the response (X-Amzn-ErrorType, __type,
// x-amzn-RequestId, a batch entry's ErrorCode), and an endpoint that echoes
// the request (a proxy, a misconfigured emulator, a hostile endpoint) has
// put the caller's session token there. The parentheses keep it from ever
// equalling a real code.
const withheld = "(withheld)"

// Longest values kept. Secrets Manager's and the AWS front end's codes are
// under 40 characters; request ids are UUIDs (36), moto's are 52.
const (
	maxCodeLen      = 64
	maxNamespaceLen = 128
	maxRequestIDLen = 64
)

// cleanCode returns an error type from the response if it is shaped like an
// AWS error code, an identifier ([A-Za-z][A-Za-z0-9]*, at most maxCodeLen),
// after dropping a Smithy namespace ("com.amazonaws.secretsmanager#",
// "aws.protocoltests.json#"), which the SDK strips from answers but not from
// a batch entry's ErrorCode. Anything else is withheld; "" stays "".
func cleanCode(code string) string {
	if i := strings.IndexByte(code, '#'); i >= 0 && isNamespace(code[:i]) {
		code = code[i+1:]
	}
	if code == "" || isIdentifier(code, maxCodeLen) {
		return code
	}
	return withheld
}

// cleanRequestID returns a request id from the response if it is shaped like
// AWS's: a UUID, or letters and digits (hex, moto's 52 characters), at most
// maxRequestIDLen. Anything else is "", and the error's text says withheld.
func cleanRequestID(id string) string {
	if id == "" || len(id) <= maxRequestIDLen && (isUUID(id) || isAlnum(id)) {
		return id
	}
	return withheld
}

func isLetter(c byte) bool { return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' }
func isDigit(c byte) bool  { return c >= '0' && c <= '9' }
func isHex(c byte) bool    { return isDigit(c) || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }

func isAlnum(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isLetter(s[i]) && !isDigit(s[i]) {
			return false
		}
	}
	return s != ""
}

func isIdentifier(s string, max int) bool {
	return s != "" && len(s) <= max && isLetter(s[0]) && isAlnum(s)
}

// isNamespace reports whether s is a Smithy namespace: dot-separated
// identifiers that may hold '_'.
func isNamespace(s string) bool {
	if s == "" || len(s) > maxNamespaceLen {
		return false
	}
	for _, seg := range strings.Split(s, ".") {
		if seg == "" || !(isLetter(seg[0]) || seg[0] == '_') {
			return false
		}
		for i := 0; i < len(seg); i++ {
			if !isLetter(seg[i]) && !isDigit(seg[i]) && seg[i] != '_' {
				return false
			}
		}
	}
	return true
}

// isUUID reports whether s is 8-4-4-4-12 hex digits.
func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch i {
		case 8, 13, 18, 23:
			if s[i] != '-' {
				return false
			}
		default:
			if !isHex(s[i]) {
				return false
			}
		}
	}
	return true
}

// serviceError describes a failed call by what is safe to log: the
// operation, the error code, the HTTP status, the request id (to find the
// call in CloudTrail) and the attempts made; a code or request id not
// shaped like AWS's reads "(withheld)". It unwraps to a copy of the
// service's error without its message.
type serviceError struct {
	operation string
	code      string // cleanCode's result
	status    int
	requestID string // cleanRequestID's result
	attempts  int
	api       error // nil when the response had no error code
}

func (e *serviceError) Error() string {
	var b strings.Builder
	b.WriteString(e.operation)
	if e.code != "" {
		b.WriteString(": ")
		b.WriteString(e.code)
	}
	var details []string
	if e.status != 0 {
		details = append(details, fmt.Sprintf("HTTP %d", e.status))
	}
	if e.requestID != "" {
		details = append(details, "request id "+e.requestID)
	}
	if e.attempts > 1 {
		details = append(details, fmt.Sprintf("%d attempts", e.attempts))
	}
	if len(details) > 0 {
		b.WriteString(" (" + strings.Join(details, ", ") + ")")
	}
	return b.String()
}

func (e *serviceError) Unwrap() error { return e.api }

// HTTPStatusCode returns the HTTP status of the answer, 0 if none.
func (e *serviceError) HTTPStatusCode() int { return e.status }

// ServiceRequestID returns the AWS request id, "" if none or withheld.
func (e *serviceError) ServiceRequestID() string {
	if e.requestID == withheld {
		return ""
	}
	return e.requestID
}

// redact returns a copy of a service error without its message, of the same
// type for the Secrets Manager exceptions a resolve meets, so that
// errors.As(err, new(*types.ResourceNotFoundException)) keeps working. code
// is the error's code through cleanCode, and the copy's ErrorCode().
func redact(api smithy.APIError, code string) error {
	switch api.(type) {
	case *types.ResourceNotFoundException:
		e := &types.ResourceNotFoundException{}
		e.ErrorCodeOverride = overrideFor(e, code)
		return e
	case *types.DecryptionFailure:
		e := &types.DecryptionFailure{}
		e.ErrorCodeOverride = overrideFor(e, code)
		return e
	case *types.InvalidRequestException:
		e := &types.InvalidRequestException{}
		e.ErrorCodeOverride = overrideFor(e, code)
		return e
	case *types.InvalidParameterException:
		e := &types.InvalidParameterException{}
		e.ErrorCodeOverride = overrideFor(e, code)
		return e
	case *types.InternalServiceError:
		e := &types.InternalServiceError{}
		e.ErrorCodeOverride = overrideFor(e, code)
		return e
	case *types.InvalidNextTokenException:
		e := &types.InvalidNextTokenException{}
		e.ErrorCodeOverride = overrideFor(e, code)
		return e
	}
	return &smithy.GenericAPIError{Code: code, Fault: api.ErrorFault()}
}

// overrideFor returns the ErrorCodeOverride that makes e answer code: nil
// when code is e's own name, the usual case.
func overrideFor(e smithy.APIError, code string) *string {
	if e.ErrorCode() == code {
		return nil
	}
	return &code
}

// batchEntryError classifies one entry of BatchGetSecretValue's Errors list.
func batchEntryError(code, message string) error {
	code = cleanCode(code)
	c, ok := errorCodeMap[code]
	reason := ""
	switch {
	case markedForDeletion(code, message):
		c, reason = secrets.CodeNotFound, deletionReason
	case !ok:
		c = secrets.CodeUnknown
	}
	if reason == "" {
		reason = reasons[c]
	}
	return driver.Wrap(c, &serviceError{operation: "BatchGetSecretValue", code: code, api: &smithy.GenericAPIError{Code: code}}, "%s", reason)
}
