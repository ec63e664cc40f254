package testenv

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// motoHow says how to make moto_server available.
const motoHow = "install moto with its server extra (pip install 'moto[server]') so that moto_server is on PATH"

// motoListening matches werkzeug's startup line, which moto_server prints on
// stderr: " * Running on http://127.0.0.1:38395".
var motoListening = regexp.MustCompile(`Running on (http://127\.0\.0\.1:[0-9]+)`)

// MotoServer starts moto_server (the AWS API emulator) on a free loopback
// port and returns its endpoint URL, "http://127.0.0.1:PORT". The server is
// stopped at t.Cleanup. When moto_server is not on PATH, MotoServer calls
// Missing: a skip, or a failure under KEYWARD_REQUIRE_SERVERS=1.
//
// Each call starts its own server (about a second), so a test package should
// start one and share it between subtests, using fresh secret names.
func MotoServer(t testing.TB) string {
	t.Helper()
	path := LookPath(t, "moto_server", motoHow)

	// Port 0 lets the kernel pick a free port, so parallel test binaries never
	// collide; moto prints the port it got.
	cmd := exec.Command(path, "-H", "127.0.0.1", "-p", "0")
	// Its own process group, so that the cleanup also stops a child the pyenv
	// shim or a wrapper may have started, and only those.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatalf("moto_server: %v", err)
	}
	cmd.Stdout = io.Discard
	if err := cmd.Start(); err != nil {
		Missing(t, "moto_server", "it is on PATH but did not start ("+err.Error()+"); "+motoHow)
	}
	pid := cmd.Process.Pid
	var waitOnce sync.Once
	wait := func() { waitOnce.Do(func() { _ = cmd.Wait() }) }
	t.Cleanup(func() {
		// The group id is the pid because of Setpgid; kill only that group.
		_ = syscall.Kill(-pid, syscall.SIGTERM)
		done := make(chan struct{})
		go func() { wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(-pid, syscall.SIGKILL)
			<-done
		}
	})

	found := make(chan string, 1)
	var logMu sync.Mutex
	var log strings.Builder
	go func() {
		// Keep draining stderr for the server's whole life: a full pipe would
		// block it on its next log line.
		sc := bufio.NewScanner(stderr)
		sent := false
		for sc.Scan() {
			line := sc.Text()
			logMu.Lock()
			if log.Len() < 8<<10 {
				log.WriteString(line + "\n")
			}
			logMu.Unlock()
			if m := motoListening.FindStringSubmatch(line); m != nil && !sent {
				found <- m[1]
				sent = true
			}
		}
		if !sent {
			close(found)
		}
	}()

	var endpoint string
	select {
	case u, ok := <-found:
		if !ok {
			logMu.Lock()
			defer logMu.Unlock()
			t.Fatalf("moto_server exited without printing its address; its output:\n%s", log.String())
		}
		endpoint = u
	case <-time.After(60 * time.Second):
		logMu.Lock()
		defer logMu.Unlock()
		t.Fatalf("moto_server printed no address within 60s; its output:\n%s", log.String())
	}

	// werkzeug prints the line just before it serves; wait until it answers.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, endpoint+"/moto-api/", nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			return endpoint
		}
		if ctx.Err() != nil {
			t.Fatalf("moto_server at %s does not answer: %v", endpoint, err)
		}
		// Polling a starting server, not waiting for a TTL.
		time.Sleep(20 * time.Millisecond)
	}
}
