// Package envstore resolves refs that name environment variables: the row
// holds "ANTHROPIC_API_KEY", the value lives in the service's environment (or
// a .env file). A policy of allow and deny patterns decides which names a ref
// may read, and by default denies the variables that hold other secrets
// (DefaultDeny), because refs often come from rows a tenant can edit: the
// master keys, DATABASE_URL and KEYWARD_*, and every variable the bundled
// SDKs and drivers (aws-sdk-go-v2, azidentity, vault/api, pgx) read a
// credential from, or the key file, token file, endpoint path or proxy URL
// that yields one. Matching ignores case.
//
// # URLs
//
// Registered as "env": env://?allow=ANTHROPIC_*,OPENAI_*&deny=INTERNAL_*&dotenv=.env
// Parameters are comma-separated path.Match patterns (allow, deny) and .env
// file paths (dotenv). Unknown parameters are an error.
//
// # Errors
//
//   - ErrNotFound: the variable is not set (set but empty resolves to "").
//     The message names the variable and says where to set it.
//   - ErrPermission: the policy denies the name, or it is not in the allow list.
//   - ErrInvalidRef: the ref is not a variable name, or its #field is used on a
//     value that is not a JSON object.
//   - ErrUnavailable: a .env file cannot be read or parsed, or the Store is
//     closed. The .env files are read on the first call that needs the
//     Store (Resolve, ResolveMany, Ping); a failure fails that call and the
//     next call reads them again. The message never quotes a file's contents.
//
// Every error is a *secrets.Error with Backend "env" and the ref; a call
// whose ctx has ended fails with one that errors.Is ctx.Err() (the driver
// layer's rule, see package driver). ResolveMany reads a variable once
// however many #fields of it are asked for.
package envstore
