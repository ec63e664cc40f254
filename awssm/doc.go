// Package awssm resolves keyward refs against AWS Secrets Manager, through
// the official SDK (github.com/aws/aws-sdk-go-v2/service/secretsmanager).
//
// A ref is a secret's name or full ARN (colons and all), an optional version
// selector, and an optional #field for a secret that holds a JSON object:
//
//	prod/anthropic                       the current version (AWSCURRENT)
//	prod/anthropic#api_key               one field of a JSON secret
//	prod/anthropic?stage=AWSPREVIOUS     a staging label (AWSPREVIOUS or a custom one)
//	prod/anthropic?version=<VersionId>   one version
//	arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/anthropic-AbCdEf#api_key
//
// ?stage= and ?version= exclude each other. A '#', '?' or '%' in a name is
// written %23, %3F, %25. SecretString is returned as is; a secret stored as
// SecretBinary is returned as its bytes. Secret.Version is the VersionId.
// Secrets Manager has no expiry of its own, so Secret.ExpiresAt is zero.
//
// New takes a client the host configured; NewFromEnv and the URL opener
// build one from the environment on first use. The Store is served through
// the driver layer (package driver), which owns ref parsing, #field, the
// context rule, the error fields, lazy opening and the closed state. It
// resolves in batches (secrets.ResolveMany, used by the cache's Warm) with
// BatchGetSecretValue, 20 secrets a call, one fetch however many #fields of a
// secret are asked for; and pings (secrets.Pinger) with ListSecrets. Close
// releases the keep-alive connections of the client NewFromEnv made (a
// client given to New is the host's, and Close leaves it alone); after it,
// every call fails with secrets.ErrUnavailable.
//
// # Version checks
//
// CurrentVersion (secrets.VersionChecker, which a cache with check= uses to
// keep an entry long and still notice a rotation) makes one DescribeSecret
// call and answers the VersionId that holds the ref's stage (AWSCURRENT, or
// ?stage=), the same as the Version a Resolve of the ref gives; a
// ?version= ref answers its own id with no call. DescribeSecret returns no
// value, but it is no cheaper: at list price it is an API call like
// GetSecretValue, $0.05 per 10,000 ($0.000005 a check), so a check costs
// what a refresh costs and a noticed change two calls. What it spares is
// the value's transfer and, by AWS's 2025-03-04 announcement, quota:
// DescribeSecret takes 40,000 requests per second, GetSecretValue 10,000
// (the quotas page has listed the two as one combined 10,000 per second:
// see Service Quotas for your account). It needs
// secretsmanager:DescribeSecret; a client given to New that lacks the
// method (see Describer) answers errors.ErrUnsupported.
//
// # URLs
//
// Importing the package registers the scheme "awssm" with secrets.Open:
//
//	awssm://?region=eu-west-1
//	awssm://?region=eu-west-1&profile=prod
//
// region and profile are the only parameters, both optional; the URL names
// no host, path or credential. The client is built by the first call that
// needs it, on that call's ctx, with config.LoadDefaultConfig (a failure,
// such as no region, fails that call and is tried again by the next), which
// reads AWS_REGION (when the URL has no
// region), AWS_PROFILE, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
// AWS_SESSION_TOKEN, AWS_ENDPOINT_URL (and AWS_ENDPOINT_URL_SECRETS_MANAGER),
// AWS_CONFIG_FILE, AWS_SHARED_CREDENTIALS_FILE, AWS_WEB_IDENTITY_TOKEN_FILE,
// AWS_ROLE_ARN and the rest of the SDK's chain (SSO, ECS and EC2 roles).
//
// The credentials need secretsmanager:GetSecretValue on the secrets (and
// kms:Decrypt for a customer-managed key); secretsmanager:BatchGetSecretValue
// for batches (without it, batches fall back to one call a secret);
// secretsmanager:ListSecrets for Ping; and secretsmanager:DescribeSecret for
// CurrentVersion.
//
// # Errors
//
// Every error is a *secrets.Error with Backend "awssm". Service error codes
// are classified by a table, never by HTTP status:
//
//	ResourceNotFoundException                         secrets.ErrNotFound
//	InvalidRequestException "marked for deletion"     secrets.ErrNotFound, with that reason
//	AccessDeniedException, UnrecognizedClientException,
//	  expired or bad signatures, no credentials       secrets.ErrPermission
//	ThrottlingException, InternalServiceError, HTTP 5xx,
//	  no answer, undecodable answers                  secrets.ErrUnavailable (after the SDK's retries)
//	DecryptionFailure                                 secrets.ErrUndecryptable
//	InvalidParameterException, a malformed ref        secrets.ErrInvalidRef
//	#field absent from the JSON secret                secrets.ErrNotFound
//	#field of a value that is not a JSON object       secrets.ErrInvalidRef
//
// A call whose ctx has ended, before or during its work, fails with
// secrets.ContextError: an error naming the ref that matches
// context.Canceled or context.DeadlineExceeded (the latter is also
// ErrUnavailable); ResolveMany then sets it on every Result and returns it.
//
// The service's error message is never part of an error's text, because it
// comes from the response body and a proxy or emulator can echo anything
// there. The text keeps the operation, the error code, the HTTP status, the
// request id (to find the call in CloudTrail) and the number of attempts.
// The code and the request id come from the response too, so each is kept
// only if shaped like AWS's (an identifier of at most 64 characters, its
// Smithy namespace dropped; a UUID or at most 64 letters and digits), and
// reads "(withheld)" otherwise: an endpoint that echoes the request has put
// the caller's session token there.
// errors.As still finds a message-less copy of the service error
// (*types.ResourceNotFoundException, smithy.APIError, ...).
//
// Errors raised before any response are cut too: the SDK's credential
// providers quote what they read (a credential_process whose output does not
// parse has the whole output, secret access key included, in the SDK's
// error), so such an error keeps only a fixed reason and the Go types of the
// SDK's error chain. A failure to get credentials is secrets.ErrPermission,
// whatever provider failed and why (a timed-out credential_process still
// matches context.DeadlineExceeded); a refused connection, a DNS failure or
// a timeout is secrets.ErrUnavailable, with the dial's *net.OpError still
// found by errors.As.
package awssm
