//go:build unix

package cache_test

import (
	"syscall"
	"time"
)

// cpuTime is the process's user+system CPU time. On a machine shared with
// other work, CPU time per op is far steadier than wall time per op: it does
// not count the time the process waits for a CPU.
func cpuTime() (time.Duration, bool) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, false
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), true
}
