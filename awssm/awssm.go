package awssm

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	secrets "github.com/keyward/secrets"
	"github.com/keyward/secrets/internal/refs"
)

// Backend is the name the store records in errors and audit events.
const Backend = "awssm"

// MaxBatch is the most secret ids one BatchGetSecretValue call takes.
const MaxBatch = 20

// API is the part of the Secrets Manager client the store uses.
// *secretsmanager.Client satisfies it; a host may pass a wrapper.
type API interface {
	GetSecretValue(ctx context.Context, in *secretsmanager.GetSecretValueInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error)
	BatchGetSecretValue(ctx context.Context, in *secretsmanager.BatchGetSecretValueInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.BatchGetSecretValueOutput, error)
	ListSecrets(ctx context.Context, in *secretsmanager.ListSecretsInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.ListSecretsOutput, error)
}

// Options configures a Store. A nil *Options means the defaults.
type Options struct {
	// MaxBatch is how many secret ids ResolveMany puts in one
	// BatchGetSecretValue call: 1 to MaxBatch; 0 means MaxBatch. A lower
	// value suits accounts whose GetSecretValue quota is shared and tight.
	MaxBatch int
	// NoBatch makes ResolveMany use GetSecretValue for every secret, for
	// credentials that are allowed GetSecretValue but not
	// BatchGetSecretValue (the store also falls back on its own when the
	// batch call is denied).
	NoBatch bool
}

// Store resolves refs against AWS Secrets Manager. It is safe for concurrent
// use.
type Store struct {
	opts Options

	once      sync.Once
	newClient func(ctx context.Context) (API, error) // nil when the client was given
	client    API
	clientErr error

	// ownHTTP is the HTTP client NewFromEnv made for Secrets Manager, the
	// only one Close touches; nil for a client the host gave.
	ownHTTP *http.Client
}

var (
	_ secrets.KeyResolver   = (*Store)(nil)
	_ secrets.BatchResolver = (*Store)(nil)
	_ secrets.Pinger        = (*Store)(nil)
	_ io.Closer             = (*Store)(nil)
	_ API                   = (*secretsmanager.Client)(nil)
)

// New returns a Store that calls client. The host configures the client
// (region, credentials, retries, endpoint); New does no I/O.
func New(client API, opts *Options) *Store {
	s := &Store{client: client}
	s.setOptions(opts)
	return s
}

// NewFromEnv returns a Store whose client is built on first use with
// config.LoadDefaultConfig: the SDK's credential chain, AWS_REGION,
// AWS_PROFILE, AWS_ENDPOINT_URL and the shared config files. A non-empty
// region or profile overrides the environment's. NewFromEnv does no I/O.
//
// Secrets Manager is called through an HTTP client of the Store's own (the
// SDK's default transport settings, no redirects followed), so that Close
// can release its keep-alive connections; the credential providers keep the
// SDK's clients (IMDS's short timeouts apply only to those).
func NewFromEnv(region, profile string, opts *Options) *Store {
	s := &Store{ownHTTP: &http.Client{
		Transport: awshttp.NewBuildableClient().GetTransport(), // a fresh copy, the Store's alone
		// Secrets Manager never redirects; a redirect is answered as it is.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
	s.setOptions(opts)
	s.newClient = func(ctx context.Context) (API, error) {
		var load []func(*config.LoadOptions) error
		if region != "" {
			load = append(load, config.WithRegion(region))
		}
		if profile != "" {
			load = append(load, config.WithSharedConfigProfile(profile))
		}
		cfg, err := config.LoadDefaultConfig(ctx, load...)
		if err != nil {
			// The cause is dropped on purpose: a parse error of the shared
			// credentials file can quote the line it failed on, and that line
			// may be an aws_secret_access_key.
			return nil, secrets.NewError("open", Backend, "", secrets.CodeUnknown,
				"cannot load the AWS configuration: check AWS_PROFILE, AWS_CONFIG_FILE, AWS_SHARED_CREDENTIALS_FILE and the files they name", nil)
		}
		if cfg.Region == "" {
			return nil, secrets.NewError("open", Backend, "", secrets.CodeInvalidRef,
				"no AWS region: set ?region= in the awssm:// URL, or AWS_REGION", nil)
		}
		return secretsmanager.NewFromConfig(cfg, func(o *secretsmanager.Options) { o.HTTPClient = s.ownHTTP }), nil
	}
	return s
}

// Close releases the idle keep-alive connections of the HTTP client
// NewFromEnv made, whose goroutines would otherwise outlive the Store by
// the transport's idle timeout. A client the host gave to New is the host's
// to close, and is left alone. Close does not refuse later resolves: one
// after it opens new connections, which another Close releases.
func (s *Store) Close() error {
	if s.ownHTTP != nil {
		s.ownHTTP.CloseIdleConnections()
	}
	return nil
}

func (s *Store) setOptions(opts *Options) {
	if opts != nil {
		s.opts = *opts
	}
	if s.opts.MaxBatch <= 0 || s.opts.MaxBatch > MaxBatch {
		s.opts.MaxBatch = MaxBatch
	}
}

// api returns the client, building it on first use.
func (s *Store) api(ctx context.Context) (API, error) {
	if s.newClient == nil {
		if s.client == nil {
			return nil, secrets.NewError("resolve", Backend, "", secrets.CodeUnknown, "awssm.New was given a nil client", nil)
		}
		return s.client, nil
	}
	// The configuration is read once; a failure stays, since it comes from
	// files and variables that do not change under a running process.
	s.once.Do(func() { s.client, s.clientErr = s.newClient(ctx) })
	return s.client, s.clientErr
}

func init() {
	secrets.Register("awssm", openURL)
}

// openURL opens "awssm://?region=eu-west-1&profile=prod".
func openURL(_ context.Context, u *url.URL) (secrets.KeyResolver, error) {
	if err := secrets.CheckParams(u, "region", "profile"); err != nil {
		return nil, err
	}
	if u.Host != "" || (u.Path != "" && u.Path != "/") || u.Opaque != "" {
		return nil, secrets.NewError("open", Backend, "", secrets.CodeInvalidRef,
			"an awssm URL names no host or path: write awssm://?region=eu-west-1 (the secret's name goes in the ref)", nil)
	}
	q := u.Query()
	return NewFromEnv(q.Get("region"), q.Get("profile"), nil), nil
}

// ref is a parsed awssm ref.
type ref struct {
	id      string // name or ARN, as the API takes it
	stage   string
	version string
	field   string
}

// current reports whether the ref asks for the current version, which is
// all BatchGetSecretValue returns.
func (r ref) current() bool {
	return r.version == "" && (r.stage == "" || r.stage == "AWSCURRENT")
}

func parseRef(s string) (ref, error) {
	p, err := refs.Parse(s, "stage", "version")
	if err != nil {
		var re *refs.Error
		if errors.As(err, &re) {
			return ref{}, invalidRef(s, re.Reason)
		}
		return ref{}, invalidRef(s, "malformed ref")
	}
	r := ref{id: p.Path, field: p.Field}
	if p.Query != nil {
		if v, ok := p.Query["stage"]; ok {
			if r.stage = v[0]; r.stage == "" {
				return ref{}, invalidRef(s, "empty ?stage=: name a staging label such as AWSPREVIOUS")
			}
		}
		if v, ok := p.Query["version"]; ok {
			if r.version = v[0]; r.version == "" {
				return ref{}, invalidRef(s, "empty ?version=: give a VersionId")
			}
		}
	}
	if r.stage != "" && r.version != "" {
		return ref{}, invalidRef(s, "give ?stage= or ?version=, not both")
	}
	return r, nil
}

func invalidRef(s, reason string) error {
	return secrets.NewError("resolve", Backend, s, secrets.CodeInvalidRef, reason, nil)
}

// Resolve returns the secret named by ref: "name", "name#field",
// "name?stage=AWSPREVIOUS", "arn:aws:secretsmanager:...:secret:name-AbCdEf?version=<id>".
func (s *Store) Resolve(ctx context.Context, refStr string) (secrets.Secret, error) {
	if err := ctx.Err(); err != nil {
		return secrets.Secret{}, ctxError("resolve", refStr, err)
	}
	secrets.InfoFrom(ctx).SetBackend(Backend)
	r, err := parseRef(refStr)
	if err != nil {
		return secrets.Secret{}, err
	}
	api, err := s.api(ctx)
	if err != nil {
		return secrets.Secret{}, withRef(err, refStr)
	}
	v, err := s.get(ctx, api, r)
	if err != nil {
		return secrets.Secret{}, classify(ctx, "resolve", refStr, "GetSecretValue", err)
	}
	return finish(refStr, r.field, v)
}

// value is what a fetch returns before #field extraction.
type value struct {
	data    []byte // SecretString, or SecretBinary when there is no string
	version string
}

func (s *Store) get(ctx context.Context, api API, r ref) (value, error) {
	in := &secretsmanager.GetSecretValueInput{SecretId: aws.String(r.id)}
	if r.stage != "" {
		in.VersionStage = aws.String(r.stage)
	}
	if r.version != "" {
		in.VersionId = aws.String(r.version)
	}
	out, err := api.GetSecretValue(ctx, in)
	if err != nil {
		return value{}, err
	}
	return newValue(out.SecretString, out.SecretBinary, out.VersionId), nil
}

func newValue(str *string, bin []byte, version *string) value {
	v := value{version: aws.ToString(version)}
	if str != nil {
		v.data = []byte(*str)
	} else {
		// The SDK has already base64-decoded the wire form.
		v.data = bin
	}
	return v
}

// finish extracts the #field, if any, and builds the Secret.
func finish(refStr, field string, v value) (secrets.Secret, error) {
	val := string(v.data)
	if field != "" {
		f, err := refs.Field(v.data, field)
		switch {
		case errors.Is(err, refs.ErrNoField):
			return secrets.Secret{}, secrets.NewError("resolve", Backend, refStr, secrets.CodeNotFound, err.Error(), nil)
		case err != nil:
			return secrets.Secret{}, secrets.NewError("resolve", Backend, refStr, secrets.CodeInvalidRef, err.Error(), nil)
		}
		val = f
	}
	sec := secrets.NewSecret(val)
	sec.Version = v.version
	return sec, nil
}

// Ping checks that the service answers and the credentials work, with a
// ListSecrets call for one entry (it needs secretsmanager:ListSecrets).
func (s *Store) Ping(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return ctxError("ping", "", err)
	}
	api, err := s.api(ctx)
	if err != nil {
		return err
	}
	if _, err := api.ListSecrets(ctx, &secretsmanager.ListSecretsInput{MaxResults: aws.Int32(1)}); err != nil {
		return classify(ctx, "ping", "", "ListSecrets", err)
	}
	return nil
}

func withRef(err error, refStr string) error {
	var e *secrets.Error
	if errors.As(err, &e) {
		c := *e
		c.Op, c.Ref = "resolve", refStr
		return &c
	}
	return err
}
