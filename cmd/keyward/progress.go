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

func newProgress(w io.Writer, op string, total int) *progress {
	p := &progress{w: w, op: op, total: total}
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
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
	fmt.Fprintf(p.w, "%s: %d/%d rows scanned, %d %s\n", p.op, r.Scanned, p.total, r.Done, verb)
}

func (p *progress) finish() {
	if p.bar != nil {
		p.bar.Finish()
	}
}
