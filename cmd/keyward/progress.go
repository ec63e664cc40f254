package main

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/keyward/secrets/fernetstore"
)

// progress shows a walk's progress on stderr: a bar on a terminal, one plain
// line per batch otherwise (logs, CI, pipes).
type progress struct {
	w     io.Writer
	op    string
	total int
	bar   *progressbar.ProgressBar
}

// isTerminal reports whether w is a terminal (progress bar, hidden input).
func isTerminal(w any) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// newProgress starts the display; total is the row count, known only on a terminal.
func newProgress(w io.Writer, op string, total int) *progress {
	p := &progress{w: w, op: op, total: total}
	if isTerminal(w) {
		p.bar = progressbar.NewOptions(total,
			progressbar.OptionSetWriter(w),
			progressbar.OptionSetDescription(op),
			progressbar.OptionShowCount(),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionClearOnFinish(),
		)
	}
	return p
}

func (p *progress) update(r fernetstore.Report) {
	if p.bar != nil {
		if r.Scanned > p.total { // rows inserted since the count
			p.total = r.Scanned
			p.bar.ChangeMax(p.total)
		}
		p.bar.Set(r.Scanned)
		return
	}
	verb := "rewritten"
	if r.DryRun {
		verb = "to rewrite"
	}
	fmt.Fprintf(p.w, "%s: %d rows scanned, %d %s\n", p.op, r.Scanned, r.Done, verb)
}

func (p *progress) finish() {
	if p.bar != nil {
		p.bar.Finish()
	}
}
