package main

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
)

// standIn is a local stand-in for the LLM providers' chat endpoints, so the
// whole request path runs offline. It speaks just enough of Anthropic's
// Messages API (x-api-key) and OpenAI's Chat Completions API (Authorization:
// Bearer) to check the key it was sent and answer.
type standIn struct {
	mu    sync.RWMutex
	valid []string
}

// standInKeysFile, in the data directory, holds the keys the stand-in
// issued, one a line (mode 0600): its account database.
const standInKeysFile = ".stand-in-keys"

// loadStandIn returns a stand-in that knows the keys in path (none if the
// file does not exist).
func loadStandIn(path string) (*standIn, error) {
	p := new(standIn)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return p, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the stand-in provider's keys: %w", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if line = strings.TrimSpace(line); line != "" {
			p.accept(line)
		}
	}
	return p, nil
}

// issueKey records key as issued by the stand-in, in its file at path.
func issueKey(path, key string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("record the stand-in provider's key: %w", err)
	}
	if _, err := f.WriteString(key + "\n"); err != nil {
		f.Close()
		return fmt.Errorf("record the stand-in provider's key: %w", err)
	}
	return f.Close()
}

// accept makes key valid for the stand-in.
func (p *standIn) accept(key string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.valid = append(p.valid, key)
}

func (p *standIn) known(key string) bool {
	p.mu.RLock()
	defer p.mu.RUnlock()
	ok := 0
	for _, v := range p.valid {
		ok |= subtle.ConstantTimeCompare([]byte(v), []byte(key))
	}
	return key != "" && ok == 1
}

type providerRequest struct {
	Messages []struct {
		Role    string `json:"role"`
		Content string `json:"content"`
	} `json:"messages"`
}

func (p *standIn) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var key string
	switch r.URL.Path {
	case "/v1/messages":
		key = r.Header.Get("x-api-key")
	case "/v1/chat/completions":
		key, _ = strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	default:
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if !p.known(key) {
		// Like the real providers: say the key is wrong, never echo it.
		w.WriteHeader(http.StatusUnauthorized)
		json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"type": "authentication_error", "message": "invalid x-api-key"}})
		return
	}
	var req providerRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&req); err != nil || len(req.Messages) == 0 {
		w.WriteHeader(http.StatusBadRequest)
		json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"type": "invalid_request_error", "message": "messages: at least one message is required"}})
		return
	}
	reply := "stand-in reply to: " + req.Messages[len(req.Messages)-1].Content
	if r.URL.Path == "/v1/messages" {
		json.NewEncoder(w).Encode(map[string]any{"type": "message", "role": "assistant",
			"content": []map[string]string{{"type": "text", "text": reply}}})
		return
	}
	json.NewEncoder(w).Encode(map[string]any{"object": "chat.completion",
		"choices": []map[string]any{{"index": 0, "message": map[string]string{"role": "assistant", "content": reply}}}})
}
