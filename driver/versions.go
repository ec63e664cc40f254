package driver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	secrets "github.com/keyward/secrets"
)

// VersionsGetter is the optional ability of a Driver to read the versions it
// keeps of a secret (see secrets.VersionResolver): up to max Values, newest
// first, [0] the current one, each with its Version set. Previous versions
// the backend no longer serves (deleted, destroyed, disabled) are left out;
// the current one failing fails the call. The core has parsed ref and picks
// its #field from every Value, as Get's.
type VersionsGetter interface {
	GetVersions(ctx context.Context, ref Ref, max int) ([]Value, error)
}

// VersionPutter is the optional ability of a Driver to store a new current
// version of a secret (see secrets.VersionWriter) and return its version id.
// v holds the value in Data, or, when the core composed a JSON document
// for a #field, in Document (a driver that stores text stores it as JSON).
// ref never has a Field: the core has dealt with it.
type VersionPutter interface {
	PutVersion(ctx context.Context, ref Ref, v Value) (version string, err error)
}

var (
	_ secrets.VersionResolver = (*Resolver)(nil)
	_ secrets.VersionWriter   = (*Resolver)(nil)
)

// ResolveVersions reads up to max versions of the secret raw names, newest
// first (see secrets.VersionResolver), with the driver's VersionsGetter.
// raw is parsed as Resolve parses it and the driver opened as for Resolve;
// the #field is picked from every version; a previous document without the
// field (it was added after it) and an expired previous version are left
// out, a previous version that is no document fails the call, and an
// expired current one is ErrExpired. A driver without the
// ability fails with ErrInvalidRef, saying the backend keeps no versions.
// Errors are *secrets.Error with Op "resolve versions", under Resolve's
// rules.
func (r *Resolver) ResolveVersions(ctx context.Context, raw string, max int) ([]secrets.Secret, error) {
	const op = "resolve versions"
	if err := ctx.Err(); err != nil {
		return nil, secrets.ContextError(op, r.backend, raw, err)
	}
	if max < 1 || max > secrets.MaxVersions {
		return nil, r.fail(ctx, op, raw, Errorf(secrets.CodeInvalidRef,
			"the number of versions to read must be 1 to %d, not %d", secrets.MaxVersions, max))
	}
	ref, err := r.ParseRef(raw)
	if err != nil {
		return nil, asOp(err, op)
	}
	d, err := r.d.Get(ctx)
	if err != nil {
		return nil, r.fail(ctx, op, raw, r.openError(err))
	}
	g, ok := d.(VersionsGetter)
	if !ok {
		return nil, r.fail(ctx, op, raw, Errorf(secrets.CodeInvalidRef,
			"the %s backend keeps no versions of a secret: name a secret in a manager that does (awssm, vault KV v2, azurekv)", r.backend))
	}
	vals, err := g.GetVersions(ctx, ref, max)
	if err != nil {
		return nil, r.fail(ctx, op, raw, err)
	}
	if len(vals) == 0 {
		return nil, r.fail(ctx, op, raw, Errorf(secrets.CodeNotFound, "the secret has no version that can be read"))
	}
	vals = vals[:min(len(vals), max)]
	out := make([]secrets.Secret, 0, len(vals))
	for i, v := range vals {
		if v.Ref != "" {
			return nil, r.fail(ctx, op, raw, Errorf(secrets.CodeInvalidRef,
				"version %s names another ref instead of holding a value; versions are not followed", versionName(v, i)))
		}
		value := v.Data
		if ref.Field != "" {
			if value, err = pick(v, ref.Field); err != nil {
				if i > 0 && secrets.CodeOf(err) == secrets.CodeNotFound {
					// A previous document without the field holds nothing
					// under it: it is left out, as a deleted version is,
					// and older ones are read on. Failing here made a
					// secret whose field was added later (keyward genkey
					// --store REF#field into an existing document)
					// unreadable as a key ring. A previous version that is
					// no document at all (a plain key before the secret
					// became one) still fails the call, naming it: leaving
					// it out would drop a key without a word.
					continue
				}
				var se *secrets.Error
				if errors.As(err, &se) && i > 0 {
					c := *se
					c.Reason = "version " + versionName(v, i) + ": " + c.Reason
					err = &c
				}
				return nil, r.fail(ctx, op, raw, err)
			}
		}
		if !v.ExpiresAt.IsZero() && !r.now().Before(v.ExpiresAt) {
			if i == 0 {
				return nil, secrets.ExpiredError(op, r.backend, raw, v.ExpiresAt)
			}
			continue
		}
		s := secrets.NewSecret(value)
		s.Version, s.ExpiresAt = v.Version, v.ExpiresAt
		s.Source = secrets.Source{Backend: r.backend}
		out = append(out, s)
	}
	return out, nil
}

// versionName names version i of a ResolveVersions answer in an error.
func versionName(v Value, i int) string {
	if v.Version != "" {
		return fmt.Sprintf("%q", v.Version)
	}
	return fmt.Sprintf("number %d (newest first)", i+1)
}

// PutVersion stores value as the new current version of the secret raw
// names (see secrets.VersionWriter), with the driver's VersionPutter, and
// returns the new version's id. With a #field, the core reads the current
// version with Get (none yet: an empty document), sets the field in its
// JSON document and stores the whole document; a current value that is no
// JSON object is ErrInvalidRef. A ?option the driver declared is passed on
// (the driver refuses those that name a version). A driver without the
// ability fails with ErrInvalidRef. Errors are *secrets.Error with Op "put
// version", under Resolve's rules, and never hold the value.
func (r *Resolver) PutVersion(ctx context.Context, raw, value string) (string, error) {
	const op = "put version"
	if err := ctx.Err(); err != nil {
		return "", secrets.ContextError(op, r.backend, raw, err)
	}
	ref, err := r.ParseRef(raw)
	if err != nil {
		return "", asOp(err, op)
	}
	if value == "" {
		return "", r.fail(ctx, op, raw, Errorf(secrets.CodeInvalidRef, "the value to store is empty"))
	}
	d, err := r.d.Get(ctx)
	if err != nil {
		return "", r.fail(ctx, op, raw, r.openError(err))
	}
	p, ok := d.(VersionPutter)
	if !ok {
		return "", r.fail(ctx, op, raw, Errorf(secrets.CodeInvalidRef,
			"the %s backend cannot store a new version of a secret: name a secret in a manager that keeps versions (awssm, vault KV v2, azurekv)", r.backend))
	}
	v := Value{Data: value}
	if ref.Field != "" {
		field := ref.Field
		ref.Field = ""
		cur, err := d.Get(ctx, ref)
		switch {
		case err == nil && cur.Ref != "":
			return "", r.fail(ctx, op, raw, Errorf(secrets.CodeInvalidRef, "the secret names another ref instead of holding a document: store the key where it points"))
		case err == nil:
		case secrets.CodeOf(err) == secrets.CodeNotFound:
			cur = Value{}
		default:
			return "", r.fail(ctx, op, raw, err)
		}
		doc, err := document(cur)
		if err != nil {
			return "", r.fail(ctx, op, raw, err)
		}
		doc[field] = value
		v = Value{Document: doc}
	}
	version, err := p.PutVersion(ctx, ref, v)
	if err != nil {
		return "", r.fail(ctx, op, raw, err)
	}
	return version, nil
}

// document is the JSON object a #field is set in: a Value's decoded
// Document, or its Data parsed; an empty Value is an empty object.
func document(v Value) (map[string]any, error) {
	if v.Document != nil {
		doc := make(map[string]any, len(v.Document)+1)
		for k, x := range v.Document {
			doc[k] = x
		}
		return doc, nil
	}
	doc := map[string]any{}
	if v.Data == "" {
		return doc, nil
	}
	if err := json.Unmarshal([]byte(v.Data), &doc); err != nil || doc == nil {
		// The parse error is dropped: its text can quote the value.
		return nil, Errorf(secrets.CodeInvalidRef,
			"the secret's current value is not a JSON object, so a #field cannot be set in it: leave out the #field to replace the whole value")
	}
	return doc, nil
}

// FollowedThrough returns the resolver last given to FollowThrough (the
// stack, as OpenConfig hands it), or nil: for a backend's own use of the
// stack it is served in, such as fernetstore reading its key ring from
// ENCRYPTION_KEY_REF through the stack's Mux.
func (r *Resolver) FollowedThrough() secrets.KeyResolver {
	if t := r.follow.Load(); t != nil {
		return t.r
	}
	return nil
}

// asOp returns err, an error of ParseRef (always an *secrets.Error, made
// for Op "resolve"), as a copy under op.
func asOp(err error, op string) error {
	var se *secrets.Error
	if errors.As(err, &se) {
		e := *se
		e.Op = op
		return &e
	}
	return err
}
