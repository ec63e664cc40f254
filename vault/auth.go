package vault

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/vault/api"
	"github.com/hashicorp/vault/api/auth/approle"
	"github.com/hashicorp/vault/api/auth/kubernetes"

	secrets "github.com/keyward/secrets"
	"github.com/keyward/secrets/driver"
)

// authState is the token the Store uses. mu serialises logins, so that a
// revoked token seen by many resolves at once leads to one login.
type authState struct {
	mu     sync.Mutex
	secret *api.Secret // the last login's answer, for the LifetimeWatcher
	expiry time.Time
	kick   chan struct{} // a resolve logged in again: follow the new token
}

// checkToken looks up the static token once, so a missing, revoked or
// expired VAULT_TOKEN is reported at start with a clear reason, and its
// expiry is known (TokenExpiry) and logged.
func (d *conn) checkToken(ctx context.Context) error {
	if d.client.Token() == "" {
		return driver.Errorf(secrets.CodePermission, "no Vault token: set VAULT_TOKEN, or open with auth=approle or auth=kubernetes")
	}
	sec, err := d.client.Auth().Token().LookupSelfWithContext(ctx)
	if err != nil {
		e := classify("checking the Vault token (lookup-self)", err)
		var se *secrets.Error
		if isStatus(err, 403) && errors.As(e, &se) {
			se.Reason = "checking the Vault token (lookup-self): Vault refused it: the token is invalid, expired or revoked"
		}
		return e
	}
	ttl, _ := sec.TokenTTL()
	renewable, _ := sec.TokenIsRenewable()
	var expiry time.Time
	if ttl > 0 {
		expiry = d.opts.Now().Add(ttl)
	}
	d.auth.mu.Lock()
	d.auth.expiry = expiry
	d.auth.mu.Unlock()
	if expiry.IsZero() {
		d.opts.Logger.Info("vault: token checked; it does not expire")
	} else {
		// A static token is not renewed by the Store: whoever issued it must
		// replace it before this time.
		d.opts.Logger.Warn("vault: token checked; it expires and is not renewed by keyward",
			"expires", expiry.UTC().Format(time.RFC3339), "ttl", ttl.Round(time.Second).String(), "renewable", renewable)
	}
	return nil
}

// login logs in with the Auth method and sets the token on the client.
// Callers hold no lock; login takes auth.mu.
func (d *conn) login(ctx context.Context) error {
	d.auth.mu.Lock()
	defer d.auth.mu.Unlock()
	return d.loginLocked(ctx)
}

func (d *conn) loginLocked(ctx context.Context) error {
	sec, err := d.client.Auth().Login(ctx, d.opts.Auth)
	if err != nil {
		var cfg *authConfigError
		if errors.As(err, &cfg) {
			return driver.Errorf(secrets.CodePermission, "logging in to Vault: %s", cfg.reason)
		}
		e := classify("logging in to Vault", err)
		var se *secrets.Error
		if errors.As(e, &se) && (se.Code == secrets.CodeInvalidRef || se.Code == secrets.CodeNotFound) {
			// Vault answers a bad role, secret id or JWT with 400, and an auth
			// mount that is not there with 404: either way the credentials
			// do not get in, which is a permission problem, not the ref's.
			se.Code = secrets.CodePermission
			se.Reason = "logging in to Vault: Vault refused the login (check the role, the credentials and the auth mount)"
		}
		return e
	}
	if sec == nil || sec.Auth == nil || sec.Auth.ClientToken == "" {
		return driver.Errorf(secrets.CodePermission, "logging in to Vault: the answer holds no token")
	}
	d.auth.secret = sec
	d.auth.expiry = time.Time{}
	ttl := time.Duration(sec.Auth.LeaseDuration) * time.Second
	if ttl > 0 {
		d.auth.expiry = d.opts.Now().Add(ttl)
	}
	d.opts.Logger.Info("vault: logged in", "ttl", ttl.String(), "renewable", sec.Auth.Renewable)
	return nil
}

// relogin logs in again unless another caller already replaced oldToken.
func (d *conn) relogin(ctx context.Context, oldToken, why string) error {
	d.auth.mu.Lock()
	defer d.auth.mu.Unlock()
	if d.client.Token() != oldToken {
		return nil
	}
	d.opts.Logger.Warn("vault: logging in again", "why", why)
	return d.loginLocked(ctx)
}

// kickRenewal tells the renewal goroutine that a resolve logged in again,
// so it stops watching the old token and watches the new one.
func (d *conn) kickRenewal() {
	select {
	case d.auth.kick <- struct{}{}:
	default:
	}
}

// tokenDead reports whether Vault refuses the current token itself, as
// opposed to refusing one path to a valid token; only then is logging in
// again of any use.
func (d *conn) tokenDead(ctx context.Context) bool {
	_, err := d.client.Auth().Token().LookupSelfWithContext(ctx)
	return isStatus(err, 403) || isStatus(err, 401)
}

// renew keeps the logged-in token alive until ctx ends: a LifetimeWatcher
// renews it, and when renewal is no longer possible (max TTL reached, token
// revoked, Vault down past its expiry) the Store logs in again, retrying
// every ReloginWait until it works.
func (d *conn) renew(ctx context.Context, done chan struct{}) {
	defer close(done)
	for {
		d.auth.mu.Lock()
		sec := d.auth.secret
		d.auth.mu.Unlock()
		w, err := d.client.NewLifetimeWatcher(&api.LifetimeWatcherInput{Secret: sec})
		if err != nil {
			d.opts.Logger.Error("vault: cannot watch the token", "error", err.Error())
			return
		}
		go w.Start()
		switch d.follow(ctx, w, sec) {
		case stopped:
			return
		case replaced:
			continue
		}
		for {
			err := d.relogin(ctx, sec.Auth.ClientToken, "the token can no longer be renewed")
			if err == nil {
				break
			}
			d.opts.Logger.Error("vault: logging in again failed; will retry", "error", renewLog(err), "wait", d.opts.ReloginWait.String())
			t := time.NewTimer(d.opts.ReloginWait)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
	}
}

// Why follow returned.
const (
	stopped  = iota // ctx ended
	replaced        // a resolve logged in again: watch the new token
	ended           // the watcher ended: log in again
)

// follow relays w's renewals of sec until w ends, a resolve replaces sec, or
// ctx ends. It always waits for w's goroutine to exit.
func (d *conn) follow(ctx context.Context, w *api.LifetimeWatcher, sec *api.Secret) int {
	for {
		select {
		case <-ctx.Done():
			w.Stop()
			<-w.DoneCh()
			return stopped
		case <-d.auth.kick:
			d.auth.mu.Lock()
			same := d.auth.secret == sec
			d.auth.mu.Unlock()
			if same {
				continue // a stale kick, from before sec was watched
			}
			w.Stop()
			<-w.DoneCh()
			return replaced
		case r := <-w.RenewCh():
			if r == nil || r.Secret == nil || r.Secret.Auth == nil {
				continue
			}
			ttl := time.Duration(r.Secret.Auth.LeaseDuration) * time.Second
			d.auth.mu.Lock()
			d.auth.expiry = d.opts.Now().Add(ttl)
			d.auth.mu.Unlock()
			d.opts.Logger.Info("vault: token renewed", "ttl", ttl.String())
		case err := <-w.DoneCh():
			if err != nil {
				// Classified, so Vault's response body never reaches the log.
				d.opts.Logger.Warn("vault: token renewal stopped", "error", renewLog(classify("renewing the token", err)))
			} else {
				d.opts.Logger.Info("vault: token reached the end of its renewals")
			}
			return ended
		}
	}
}

// renewLog is the text of a renewal's error for the log, named as the
// renewal's: errors are classified first, so Vault's response body never
// reaches the log.
func renewLog(err error) string {
	var se *secrets.Error
	if errors.As(err, &se) {
		c := *se
		c.Op, c.Backend = "renew", Backend
		return c.Error()
	}
	return err.Error()
}

// authConfigError is a local misconfiguration of a login method (a missing
// role id file): it names what to set, never a credential.
type authConfigError struct{ reason string }

func (e *authConfigError) Error() string { return e.reason }

// lazyAuth builds its login method on every login, so credentials read from
// files (a rotated secret id, Kubernetes' projected service-account token,
// which the kubelet replaces hourly) are read fresh, and so that opening a
// Store does no file I/O.
type lazyAuth func() (api.AuthMethod, error)

func (f lazyAuth) Login(ctx context.Context, c *api.Client) (*api.Secret, error) {
	m, err := f()
	if err != nil {
		return nil, err
	}
	return m.Login(ctx, c)
}

// fromEnvOrFile reads a credential from env var name, or from the file named
// by name_FILE. The value is trimmed of surrounding whitespace.
func fromEnvOrFile(name string) (string, error) {
	if v := os.Getenv(name); v != "" {
		return strings.TrimSpace(v), nil
	}
	file := os.Getenv(name + "_FILE")
	if file == "" {
		return "", &authConfigError{fmt.Sprintf("set %s, or %s_FILE to a file holding it", name, name)}
	}
	b, err := os.ReadFile(file)
	if err != nil {
		// The path is configuration, not a secret; the error is the OS's.
		return "", &authConfigError{fmt.Sprintf("cannot read %s_FILE: %v", name, err)}
	}
	v := strings.TrimSpace(string(b))
	if v == "" {
		return "", &authConfigError{name + "_FILE names an empty file"}
	}
	return v, nil
}

// appRoleAuth logs in with AppRole: the role id from VAULT_ROLE_ID or
// VAULT_ROLE_ID_FILE, the secret id from VAULT_SECRET_ID or
// VAULT_SECRET_ID_FILE, at the auth mount (default "approle").
func appRoleAuth(mount string) api.AuthMethod {
	return lazyAuth(func() (api.AuthMethod, error) {
		roleID, err := fromEnvOrFile("VAULT_ROLE_ID")
		if err != nil {
			return nil, err
		}
		secretID, err := fromEnvOrFile("VAULT_SECRET_ID")
		if err != nil {
			return nil, err
		}
		var opts []approle.LoginOption
		if mount != "" {
			opts = append(opts, approle.WithMountPath(mount))
		}
		m, err := approle.NewAppRoleAuth(roleID, &approle.SecretID{FromString: secretID}, opts...)
		if err != nil {
			return nil, &authConfigError{"AppRole: " + err.Error()}
		}
		return m, nil
	})
}

// DefaultKubernetesTokenFile is where Kubernetes mounts a pod's
// service-account token.
const DefaultKubernetesTokenFile = "/var/run/secrets/kubernetes.io/serviceaccount/token"

// kubernetesAuth logs in with the pod's service-account JWT, read from
// VAULT_KUBERNETES_TOKEN_FILE or DefaultKubernetesTokenFile at every login.
func kubernetesAuth(role, mount string) api.AuthMethod {
	return lazyAuth(func() (api.AuthMethod, error) {
		file := os.Getenv("VAULT_KUBERNETES_TOKEN_FILE")
		if file == "" {
			file = DefaultKubernetesTokenFile
		}
		jwt, err := os.ReadFile(file)
		if err != nil {
			return nil, &authConfigError{fmt.Sprintf("Kubernetes: cannot read the service-account token: %v (set VAULT_KUBERNETES_TOKEN_FILE)", err)}
		}
		opts := []kubernetes.LoginOption{kubernetes.WithServiceAccountToken(strings.TrimSpace(string(jwt)))}
		if mount != "" {
			opts = append(opts, kubernetes.WithMountPath(mount))
		}
		m, err := kubernetes.NewKubernetesAuth(role, opts...)
		if err != nil {
			return nil, &authConfigError{"Kubernetes: " + err.Error()}
		}
		return m, nil
	})
}
