package awssm

import (
	"context"
	"errors"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	secrets "github.com/keyward/secrets"
)

// ResolveMany resolves refs with BatchGetSecretValue, MaxBatch secret ids a
// call. Refs that name the same secret (several #fields of one JSON secret)
// share one fetch. Refs with ?version= or a ?stage= other than AWSCURRENT
// use GetSecretValue, since the batch call returns current versions only.
// Refs of one secret version share one fetch in every case.
// A secret the batch call does not answer for (a partial ARN, say) is
// fetched with GetSecretValue; when the batch call itself is denied (IAM
// policies written before it existed allow GetSecretValue only), every
// secret of that call is.
//
// Per-ref failures are in Result.Err; the returned error is only for a
// canceled or timed-out ctx.
func (s *Store) ResolveMany(ctx context.Context, refList []string) ([]secrets.Result, error) {
	if err := ctx.Err(); err != nil {
		return nil, ctxError("resolve", "", err)
	}
	secrets.InfoFrom(ctx).SetBackend(Backend)
	out := make([]secrets.Result, len(refList))
	parsed := make([]ref, len(refList))
	// Refs of the current version, grouped by secret id in first-seen order.
	byID := map[string][]int{}
	var ids []string
	// Refs fetched one secret version a call, grouped by that version.
	type version struct{ id, stage, version string }
	bySingle := map[version][]int{}
	var singles []version
	for i, rs := range refList {
		out[i].Ref = rs
		r, err := parseRef(rs)
		if err != nil {
			out[i].Err = err
			continue
		}
		parsed[i] = r
		if !r.current() || s.opts.NoBatch {
			k := version{r.id, r.stage, r.version}
			if _, seen := bySingle[k]; !seen {
				singles = append(singles, k)
			}
			bySingle[k] = append(bySingle[k], i)
			continue
		}
		if _, seen := byID[r.id]; !seen {
			ids = append(ids, r.id)
		}
		byID[r.id] = append(byID[r.id], i)
	}
	if len(singles)+len(ids) == 0 {
		return out, nil
	}
	api, err := s.api(ctx)
	if err != nil {
		for i := range out {
			if out[i].Err == nil {
				out[i].Err = withRef(err, refList[i])
			}
		}
		return out, nil
	}

	// fill answers the refs idx from one fetch.
	fill := func(v value, fetchErr error, idx []int) {
		for _, i := range idx {
			switch {
			case fetchErr != nil:
				out[i].Err = withRef(fetchErr, refList[i])
			default:
				out[i].Secret, out[i].Err = finish(refList[i], parsed[i].field, v)
			}
		}
	}
	getOne := func(r ref, idx []int) error {
		v, err := s.get(ctx, api, r)
		if err != nil {
			err = classify(ctx, "resolve", refList[idx[0]], "GetSecretValue", err)
			if ctx.Err() != nil {
				return err
			}
		}
		fill(v, err, idx)
		return nil
	}

	for start := 0; start < len(ids); start += s.opts.MaxBatch {
		chunk := ids[start:min(start+s.opts.MaxBatch, len(ids))]
		found, entryErrs, err := s.batch(ctx, api, chunk)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctxError("resolve", "", ctx.Err())
			}
			err = classify(ctx, "resolve", "", "BatchGetSecretValue", err)
			if !batchRefused(err) {
				for _, id := range chunk {
					fill(value{}, err, byID[id])
				}
				continue
			}
			// Denied or not implemented: the per-secret call may be allowed.
			found, entryErrs = nil, nil
		}
		for _, id := range chunk {
			idx := byID[id]
			if v, ok := found[id]; ok {
				fill(v, nil, idx)
				continue
			}
			if e, ok := entryErrs[id]; ok {
				for _, i := range idx {
					out[i].Err = batchEntryError(refList[i], e.code, e.message)
				}
				continue
			}
			if err := getOne(ref{id: id}, idx); err != nil {
				return nil, err
			}
		}
	}
	for _, k := range singles {
		if err := getOne(ref{id: k.id, stage: k.stage, version: k.version}, bySingle[k]); err != nil {
			return nil, err
		}
	}
	return out, nil
}

type entryError struct{ code, message string }

// batch makes the BatchGetSecretValue calls for ids (at most MaxBatch) and
// indexes the answers by the id asked for: an entry matches an id equal to
// its name or its ARN.
func (s *Store) batch(ctx context.Context, api API, ids []string) (map[string]value, map[string]entryError, error) {
	wanted := make(map[string]bool, len(ids))
	for _, id := range ids {
		wanted[id] = true
	}
	found := make(map[string]value, len(ids))
	errs := map[string]entryError{}
	in := &secretsmanager.BatchGetSecretValueInput{SecretIdList: ids}
	// The service pages even an id list when answers are large; follow it,
	// with a bound so a server that always sends a token cannot loop us.
	for page := 0; page < len(ids)+1; page++ {
		out, err := api.BatchGetSecretValue(ctx, in)
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
				errs[id] = entryError{code: aws.ToString(e.ErrorCode), message: aws.ToString(e.Message)}
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
