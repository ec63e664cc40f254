package awssm

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/aws/smithy-go"

	secrets "github.com/keyward/secrets"
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

// classify turns an error of an SDK call into a *secrets.Error.
//
// The returned error's text never holds anything the response body said.
// Service errors are replaced by a copy without their message (still found
// by errors.As as *types.ResourceNotFoundException, smithy.APIError, ...),
// deserialization errors are dropped (they keep a snapshot of the body),
// and errors with no response (dial failures, context) are kept as they are.
func classify(ctx context.Context, op, refStr, operation string, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return ctxError(op, refStr, ctxErr)
	}
	e := &secrets.Error{Op: op, Backend: Backend, Ref: refStr}
	attempts := 0
	var maxErr *retry.MaxAttemptsError
	if errors.As(err, &maxErr) {
		attempts = maxErr.Attempt
	}
	status, requestID := 0, ""
	var respErr *awshttp.ResponseError
	if errors.As(err, &respErr) {
		status, requestID = respErr.HTTPStatusCode(), respErr.ServiceRequestID()
	}

	var apiErr smithy.APIError
	var deserErr *smithy.DeserializationError
	switch {
	case errors.As(err, &apiErr):
		code, ok := errorCodeMap[apiErr.ErrorCode()]
		switch {
		case markedForDeletion(apiErr.ErrorCode(), apiErr.ErrorMessage()):
			code, e.Reason = secrets.CodeNotFound, deletionReason
		case ok:
		case status >= 500 || apiErr.ErrorFault() == smithy.FaultServer:
			code = secrets.CodeUnavailable
		default:
			code = secrets.CodeUnknown
		}
		e.Code = code
		if e.Reason == "" {
			e.Reason = reasons[code]
		}
		e.Err = &serviceError{operation: operation, code: apiErr.ErrorCode(), status: status,
			requestID: requestID, attempts: attempts, api: redact(apiErr)}
	case errors.As(err, &deserErr):
		// A body the SDK cannot decode: a proxy's HTML page, a truncated
		// answer. The SDK keeps a snapshot of the body in the error, and the
		// body of a GetSecretValue answer is the secret, so the cause goes.
		e.Code = secrets.CodeUnavailable
		e.Reason = "the answer could not be decoded; is the endpoint a Secrets Manager endpoint?"
		if status >= 500 || status == 429 {
			e.Reason = reasons[e.Code]
		}
		e.Err = &serviceError{operation: operation, status: status, requestID: requestID, attempts: attempts}
	case status != 0:
		// A response without a service error code: its body is not kept.
		e.Code = secrets.CodeUnknown
		if status >= 500 || status == 429 {
			e.Code = secrets.CodeUnavailable
		}
		e.Reason = reasons[e.Code]
		e.Err = &serviceError{operation: operation, status: status, requestID: requestID, attempts: attempts}
	default:
		// No response reached us (connection refused, DNS, TLS, missing
		// credentials): nothing a server said can be in the text, so the SDK
		// error stays whole for errors.As.
		e.Code = secrets.CodeUnavailable
		e.Reason = operation + " got no answer from AWS Secrets Manager"
		if strings.Contains(err.Error(), "retrieve credentials") || strings.Contains(err.Error(), "get identity") {
			e.Code = secrets.CodePermission
			e.Reason = "no usable AWS credentials: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or run with a role"
		}
		e.Err = err
	}
	return e
}

// ctxError reports a canceled or timed-out call. It matches errors.Is with
// the context's error; a deadline is also ErrUnavailable.
func ctxError(op, refStr string, err error) error {
	code, reason := secrets.CodeUnknown, "canceled"
	if errors.Is(err, context.DeadlineExceeded) {
		code, reason = secrets.CodeUnavailable, "no answer before the context's deadline"
	}
	return &secrets.Error{Op: op, Backend: Backend, Ref: refStr, Code: code, Reason: reason, Err: err}
}

// serviceError describes a failed call by what is safe to log: the
// operation, the error code, the HTTP status, the request id (to find the
// call in CloudTrail) and the attempts made. It unwraps to a copy of the
// service's error without its message.
type serviceError struct {
	operation string
	code      string
	status    int
	requestID string
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

// ServiceRequestID returns the AWS request id, "" if none.
func (e *serviceError) ServiceRequestID() string { return e.requestID }

// redact returns a copy of a service error without its message, of the same
// type for the Secrets Manager exceptions a resolve meets, so that
// errors.As(err, new(*types.ResourceNotFoundException)) keeps working.
func redact(api smithy.APIError) error {
	switch v := api.(type) {
	case *types.ResourceNotFoundException:
		return &types.ResourceNotFoundException{ErrorCodeOverride: v.ErrorCodeOverride}
	case *types.DecryptionFailure:
		return &types.DecryptionFailure{ErrorCodeOverride: v.ErrorCodeOverride}
	case *types.InvalidRequestException:
		return &types.InvalidRequestException{ErrorCodeOverride: v.ErrorCodeOverride}
	case *types.InvalidParameterException:
		return &types.InvalidParameterException{ErrorCodeOverride: v.ErrorCodeOverride}
	case *types.InternalServiceError:
		return &types.InternalServiceError{ErrorCodeOverride: v.ErrorCodeOverride}
	case *types.InvalidNextTokenException:
		return &types.InvalidNextTokenException{ErrorCodeOverride: v.ErrorCodeOverride}
	}
	return &smithy.GenericAPIError{Code: api.ErrorCode(), Fault: api.ErrorFault()}
}

// batchEntryError classifies one entry of BatchGetSecretValue's Errors list.
func batchEntryError(refStr, code, message string) error {
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
	return &secrets.Error{Op: "resolve", Backend: Backend, Ref: refStr, Code: c, Reason: reason,
		Err: &serviceError{operation: "BatchGetSecretValue", code: code, api: &smithy.GenericAPIError{Code: code}}}
}
