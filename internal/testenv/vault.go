package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"testing"
	"time"
)

// VaultServer is a throwaway Vault dev server (in-memory storage, unsealed,
// KV v2 at secret/, token auth only) started by a test.
type VaultServer struct {
	// Addr is the server's URL, "http://127.0.0.1:<port>".
	Addr string
	// RootToken is a random token made for this server only.
	RootToken string

	bin    string
	listen string
	mu     sync.Mutex
	cmd    *exec.Cmd
	waited chan struct{}
	out    *Buffer
}

// VaultBin returns the vault binary named by KEYWARD_VAULT_BIN, or calls
// Missing saying how to build it.
func VaultBin(t testing.TB) string {
	t.Helper()
	const how = "build it with tools/vaultdev/build.sh and export KEYWARD_VAULT_BIN=<the path it prints>"
	bin := os.Getenv("KEYWARD_VAULT_BIN")
	if bin == "" {
		Missing(t, "a vault binary (KEYWARD_VAULT_BIN)", how)
	}
	if st, err := os.Stat(bin); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
		Missing(t, "the vault binary at KEYWARD_VAULT_BIN="+bin, how)
	}
	return bin
}

// Vault starts a Vault dev server on a free loopback port and stops it when
// the test ends. It skips (or fails under KEYWARD_REQUIRE_SERVERS=1) when
// KEYWARD_VAULT_BIN is not set.
func Vault(t testing.TB) *VaultServer {
	t.Helper()
	bin := VaultBin(t)
	tok := make([]byte, 16)
	rand.Read(tok)
	v := &VaultServer{bin: bin, RootToken: "kw-root-" + hex.EncodeToString(tok)}
	// The dev server also listens on port+1 for cluster traffic, so both
	// must be free.
	for range 50 {
		p := freePort(t)
		if portFree(p + 1) {
			v.listen = "127.0.0.1:" + strconv.Itoa(p)
			break
		}
	}
	if v.listen == "" {
		t.Fatal("testenv: no pair of free loopback ports for Vault")
	}
	v.Addr = "http://" + v.listen
	v.Start(t)
	t.Cleanup(func() { v.Stop(t) })
	return v
}

// Start starts the server (again) on its address, and waits until
// sys/health answers. A restarted dev server is empty: the dev-mode mounts
// are back, anything written before is gone.
func (v *VaultServer) Start(t testing.TB) {
	t.Helper()
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.cmd != nil {
		t.Fatal("testenv: Vault is already running")
	}
	// The root token goes in the environment (VAULT_DEV_ROOT_TOKEN_ID), not
	// on the command line, where other users could read it.
	cmd := exec.Command(v.bin, "server", "-dev",
		"-dev-listen-address="+v.listen,
		"-dev-no-store-token")
	v.out = &Buffer{}
	cmd.Stdout, cmd.Stderr = v.out, v.out
	cmd.Env = append(os.Environ(), "VAULT_DISABLE_MLOCK=true", "VAULT_LOG_LEVEL=warn", "HOME="+t.TempDir(),
		"VAULT_DEV_ROOT_TOKEN_ID="+v.RootToken)
	if err := cmd.Start(); err != nil {
		t.Fatalf("testenv: starting vault: %v", err)
	}
	v.cmd = cmd
	v.waited = make(chan struct{})
	go func() { cmd.Wait(); close(v.waited) }()

	deadline := time.Now().Add(60 * time.Second)
	for {
		if v.healthy() {
			return
		}
		select {
		case <-v.waited:
			t.Fatalf("testenv: vault exited at start:\n%s", v.out.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("testenv: vault did not become healthy within 60s:\n%s", v.out.String())
		}
	}
}

func (v *VaultServer) healthy() bool {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, v.Addr+"/v1/sys/health", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// Stop stops the server and waits for it to exit. Stopping a stopped
// server does nothing.
func (v *VaultServer) Stop(t testing.TB) {
	t.Helper()
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.cmd == nil {
		return
	}
	v.cmd.Process.Signal(os.Interrupt)
	select {
	case <-v.waited:
	case <-time.After(10 * time.Second):
		v.cmd.Process.Kill()
		<-v.waited
	}
	v.cmd = nil
	// Wait until the port is really free, so Start can reuse it.
	for range 100 {
		if portFree(mustAtoi(v.listen)) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Log returns what the server printed so far (its dev banner holds only
// the test's random root token and unseal key).
func (v *VaultServer) Log() string { return v.out.String() }

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func portFree(p int) bool {
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
	if err != nil {
		return false
	}
	l.Close()
	return true
}

func mustAtoi(hostport string) int {
	_, p, _ := net.SplitHostPort(hostport)
	n, err := strconv.Atoi(p)
	if err != nil {
		panic(fmt.Sprintf("testenv: bad address %q", hostport))
	}
	return n
}
