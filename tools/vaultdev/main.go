// Command vault is a stock HashiCorp Vault binary built from the
// github.com/hashicorp/vault module, for keyward's integration tests only.
//
// It lives in a nested module so the library's go.mod never requires Vault's
// dependency tree and `go test ./...` in the main module never builds it.
// Build it with build.sh, which caches the binary outside the repository.
package main

import (
	"os"

	"github.com/hashicorp/vault/command"
)

func main() {
	os.Exit(command.Run(os.Args[1:]))
}
