package awssm

import (
	"context"
	"io"
	"net/http"
	"net/url"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	secrets "github.com/keyward/secrets"
	"github.com/keyward/secrets/driver"
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

// Store resolves refs against AWS Secrets Manager: "name", "name#field",
// "name?stage=AWSPREVIOUS", "arn:aws:secretsmanager:...:secret:name-AbCdEf?version=<id>"
// (see the package doc). Resolve, ResolveMany, Ping and Close come from the
// driver layer (driver.Resolver). It is safe for concurrent use.
type Store struct {
	*driver.Resolver
}

var (
	_ secrets.KeyResolver   = (*Store)(nil)
	_ secrets.BatchResolver = (*Store)(nil)
	_ secrets.Pinger        = (*Store)(nil)
	_ io.Closer             = (*Store)(nil)
	_ API                   = (*secretsmanager.Client)(nil)

	_ driver.Batcher = (*sm)(nil)
	_ driver.Pinger  = (*sm)(nil)
	_ io.Closer      = (*sm)(nil)
)

// sm is the Store's driver: a client and the batch options.
type sm struct {
	api  API
	opts Options
	// ownHTTP is the HTTP client NewFromEnv made for Secrets Manager, the
	// only one Close touches; nil for a client the host gave.
	ownHTTP *http.Client
}

// refOptions declares the ?options an awssm ref takes and their rules.
var refOptions = &driver.Options{Params: []string{"stage", "version"}, Check: check}

// New returns a Store that calls client. The host configures the client
// (region, credentials, retries, endpoint); New does no I/O.
func New(client API, opts *Options) *Store {
	d := &sm{api: client, opts: options(opts)}
	return &Store{driver.Open(Backend, func(context.Context) (driver.Driver, error) {
		if client == nil {
			return nil, driver.Errorf(secrets.CodeUnknown, "awssm.New was given a nil client")
		}
		return d, nil
	}, refOptions)}
}

// loadConfig is config.LoadDefaultConfig; a test replaces it to see the ctx
// the client is made on.
var loadConfig = config.LoadDefaultConfig

// NewFromEnv returns a Store whose client is built on first use with
// config.LoadDefaultConfig: the SDK's credential chain, AWS_REGION,
// AWS_PROFILE, AWS_ENDPOINT_URL and the shared config files. A non-empty
// region or profile overrides the environment's. NewFromEnv does no I/O;
// the configuration is read on the ctx of the first call that needs the
// client, and read again by the next call if that failed.
//
// Secrets Manager is called through an HTTP client of the Store's own (the
// SDK's default transport settings, no redirects followed), so that Close
// can release its keep-alive connections; the credential providers keep the
// SDK's clients (IMDS's short timeouts apply only to those).
func NewFromEnv(region, profile string, opts *Options) *Store {
	o := options(opts)
	var load []func(*config.LoadOptions) error
	if region != "" {
		load = append(load, config.WithRegion(region))
	}
	if profile != "" {
		load = append(load, config.WithSharedConfigProfile(profile))
	}
	return &Store{driver.Open(Backend, func(ctx context.Context) (driver.Driver, error) {
		cfg, err := loadConfig(ctx, load...)
		if err != nil {
			if cerr := ctx.Err(); cerr != nil {
				return nil, cerr
			}
			// The cause is dropped on purpose: a parse error of the shared
			// credentials file can quote the line it failed on, and that line
			// may be an aws_secret_access_key.
			return nil, driver.Errorf(secrets.CodeUnknown,
				"cannot load the AWS configuration: check AWS_PROFILE, AWS_CONFIG_FILE, AWS_SHARED_CREDENTIALS_FILE and the files they name")
		}
		if cfg.Region == "" {
			return nil, driver.Errorf(secrets.CodeInvalidRef, "no AWS region: set ?region= in the awssm:// URL, or AWS_REGION")
		}
		own := &http.Client{
			Transport: awshttp.NewBuildableClient().GetTransport(), // a fresh copy, the Store's alone
			// Secrets Manager never redirects; a redirect is answered as it is.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
		api := secretsmanager.NewFromConfig(cfg, func(o *secretsmanager.Options) { o.HTTPClient = own })
		return &sm{api: api, opts: o, ownHTTP: own}, nil
	}, refOptions)}
}

func options(opts *Options) Options {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.MaxBatch <= 0 || o.MaxBatch > MaxBatch {
		o.MaxBatch = MaxBatch
	}
	return o
}

// Close releases the idle keep-alive connections of the HTTP client
// NewFromEnv made, whose goroutines would otherwise outlive the Store by
// the transport's idle timeout. A client the host gave to New is the host's
// to close, and is left alone.
func (d *sm) Close() error {
	if d.ownHTTP != nil {
		d.ownHTTP.CloseIdleConnections()
	}
	return nil
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

// ref is an awssm ref: the secret and the version of it to get.
type ref struct {
	id      string // name or ARN, as the API takes it
	stage   string
	version string
}

// current reports whether the ref asks for the current version, which is
// all BatchGetSecretValue returns.
func (r ref) current() bool {
	return r.version == "" && (r.stage == "" || r.stage == "AWSCURRENT")
}

// check is awssm's rule for a ref the core parsed, applied before the
// client is made: ?stage= and ?version= are not empty and exclude each
// other.
func check(p driver.Ref) error {
	r := toRef(p)
	switch {
	case p.Query.Has("stage") && r.stage == "":
		return driver.Errorf(secrets.CodeInvalidRef, "empty ?stage=: name a staging label such as AWSPREVIOUS")
	case p.Query.Has("version") && r.version == "":
		return driver.Errorf(secrets.CodeInvalidRef, "empty ?version=: give a VersionId")
	case r.stage != "" && r.version != "":
		return driver.Errorf(secrets.CodeInvalidRef, "give ?stage= or ?version=, not both")
	}
	return nil
}

func toRef(p driver.Ref) ref {
	return ref{id: p.Name, stage: p.Query.Get("stage"), version: p.Query.Get("version")}
}

// Get fetches the secret version p names with GetSecretValue.
func (d *sm) Get(ctx context.Context, p driver.Ref) (driver.Value, error) {
	return d.get(ctx, toRef(p))
}

func (d *sm) get(ctx context.Context, r ref) (driver.Value, error) {
	in := &secretsmanager.GetSecretValueInput{SecretId: aws.String(r.id)}
	if r.stage != "" {
		in.VersionStage = aws.String(r.stage)
	}
	if r.version != "" {
		in.VersionId = aws.String(r.version)
	}
	out, err := d.api.GetSecretValue(ctx, in)
	if err != nil {
		return driver.Value{}, classify("GetSecretValue", err)
	}
	return newValue(out.SecretString, out.SecretBinary, out.VersionId), nil
}

// newValue is SecretString, or SecretBinary (which the SDK has already
// base64-decoded) when there is no string.
func newValue(str *string, bin []byte, version *string) driver.Value {
	v := driver.Value{Data: string(bin), Version: aws.ToString(version)}
	if str != nil {
		v.Data = *str
	}
	return v
}

// Ping checks that the service answers and the credentials work, with a
// ListSecrets call for one entry (it needs secretsmanager:ListSecrets).
func (d *sm) Ping(ctx context.Context) error {
	if _, err := d.api.ListSecrets(ctx, &secretsmanager.ListSecretsInput{MaxResults: aws.Int32(1)}); err != nil {
		return classify("ListSecrets", err)
	}
	return nil
}
