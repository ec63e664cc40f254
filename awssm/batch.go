package awssm

import (
	"context"
	"errors"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/keyward/secrets/driver"
)

// GetMany fetches refs (the core has merged those that differ only by
// #field) with BatchGetSecretValue, MaxBatch secret ids a call. Refs of the
// current version of one secret ("name", "name?stage=AWSCURRENT") share one
// id. Refs with ?version= or a ?stage= other than AWSCURRENT use
// GetSecretValue, since the batch call returns current versions only; so
// does every ref with Options.NoBatch.
// A secret the batch call does not answer for (a partial ARN, say) is
// fetched with GetSecretValue; when the batch call itself is denied (IAM
// policies written before it existed allow GetSecretValue only), every
// secret of that call is.
//
// Per-ref failures are in errs; the whole call fails only when ctx ends.
func (d *sm) GetMany(ctx context.Context, refs []driver.Ref) ([]driver.Value, []error, error) {
	vals := make([]driver.Value, len(refs))
	errs := make([]error, len(refs))
	// Refs of the current version, grouped by secret id in first-seen order.
	byID := map[string][]int{}
	var ids []string
	var singles []int // refs fetched one secret version a call
	for i, p := range refs {
		if r := toRef(p); !r.current() || d.opts.NoBatch {
			singles = append(singles, i)
		} else {
			if _, seen := byID[r.id]; !seen {
				ids = append(ids, r.id)
			}
			byID[r.id] = append(byID[r.id], i)
		}
	}
	fill := func(idx []int, v driver.Value, err error) {
		for _, i := range idx {
			vals[i], errs[i] = v, err
		}
	}

	for start := 0; start < len(ids); start += d.opts.MaxBatch {
		chunk := ids[start:min(start+d.opts.MaxBatch, len(ids))]
		found, entryErrs, err := d.batch(ctx, chunk)
		if err != nil {
			if cerr := ctx.Err(); cerr != nil {
				return nil, nil, cerr
			}
			err = classify("BatchGetSecretValue", err)
			if !batchRefused(err) {
				for _, id := range chunk {
					fill(byID[id], driver.Value{}, err)
				}
				continue
			}
			// Denied or not implemented: the per-secret call may be allowed.
			found, entryErrs = nil, nil
		}
		for _, id := range chunk {
			if v, ok := found[id]; ok {
				fill(byID[id], v, nil)
				continue
			}
			if e, ok := entryErrs[id]; ok {
				fill(byID[id], driver.Value{}, e)
				continue
			}
			v, err := d.get(ctx, ref{id: id})
			if cerr := ctx.Err(); cerr != nil {
				return nil, nil, cerr
			}
			fill(byID[id], v, err)
		}
	}
	for _, i := range singles {
		vals[i], errs[i] = d.get(ctx, toRef(refs[i]))
		if cerr := ctx.Err(); cerr != nil {
			return nil, nil, cerr
		}
	}
	return vals, errs, nil
}

// batch makes the BatchGetSecretValue calls for ids (at most MaxBatch) and
// indexes the answers by the id asked for: an entry matches an id equal to
// its name or its ARN.
func (d *sm) batch(ctx context.Context, ids []string) (map[string]driver.Value, map[string]error, error) {
	wanted := make(map[string]bool, len(ids))
	for _, id := range ids {
		wanted[id] = true
	}
	found := make(map[string]driver.Value, len(ids))
	errs := map[string]error{}
	in := &secretsmanager.BatchGetSecretValueInput{SecretIdList: ids}
	// The service pages even an id list when answers are large; follow it,
	// with a bound so a server that always sends a token cannot loop us.
	for page := 0; page < len(ids)+1; page++ {
		out, err := d.api.BatchGetSecretValue(ctx, in)
		if err != nil {
			return nil, nil, err
		}
		for _, e := range out.SecretValues {
			v := newValue(e.SecretString, e.SecretBinary, e.VersionId)
			for _, key := range []string{aws.ToString(e.Name), aws.ToString(e.ARN)} {
				if wanted[key] {
					found[key] = v
				}
			}
		}
		for _, e := range out.Errors {
			id := aws.ToString(e.SecretId)
			if wanted[id] {
				errs[id] = batchEntryError(aws.ToString(e.ErrorCode), aws.ToString(e.Message))
			}
		}
		if aws.ToString(out.NextToken) == "" {
			break
		}
		in = &secretsmanager.BatchGetSecretValueInput{SecretIdList: ids, NextToken: out.NextToken}
	}
	return found, errs, nil
}

// batchRefused reports whether the batch call itself was refused while the
// per-secret call may work: a policy that allows GetSecretValue but not
// BatchGetSecretValue (policies written before 2023), or an endpoint that
// does not implement it (an older emulator, a proxy with a fixed list).
// Bad credentials or throttling are not: the per-secret calls would fail too.
func batchRefused(err error) bool {
	var e *serviceError
	if !errors.As(err, &e) {
		return false
	}
	switch e.code {
	case "AccessDeniedException", "AccessDenied", "UnknownOperationException", "InvalidAction", "NotImplemented":
		return true
	}
	return false
}
