package main

import (
	"strings"
	"unicode"
)

// The mask's shape: values shorter than minMasked runes are hidden entirely
// (a short value is more likely a password than a provider key, and half of
// it would be too much); longer ones keep a provider prefix, if they have
// one, and the last maskTail runes, never more than a third of the value.
const (
	minMasked  = 20
	maskTail   = 3
	fullMask   = "********"
	maxDashed  = 8 // "sk-proj-": a prefix through the second '-' within 8 runes
	maskEllips = "…"
)

// mask shows enough of a value to tell keys apart (sk-ant-…Xy9) and never
// enough to use one: a provider prefix through the second '-' (at most 8
// runes; none when the value has no such prefix), an ellipsis, the last 3
// runes; at most a third of the value in all, and nothing of a value shorter
// than 20 runes.
func mask(v string) string {
	r := []rune(v)
	if len(r) < minMasked {
		return fullMask
	}
	prefix := 0
	dashes := 0
	for i := 0; i < len(r) && i < maxDashed; i++ {
		if r[i] == '-' {
			dashes++
			if dashes == 2 {
				prefix = i + 1
				break
			}
		}
	}
	if limit := len(r)/3 - maskTail; prefix > limit {
		prefix = limit
	}
	var b strings.Builder
	for _, c := range r[:prefix] {
		b.WriteRune(printable(c))
	}
	b.WriteString(maskEllips)
	for _, c := range r[len(r)-maskTail:] {
		b.WriteRune(printable(c))
	}
	return b.String()
}

// printable keeps control characters of a value off the terminal.
func printable(c rune) rune {
	if unicode.IsPrint(c) {
		return c
	}
	return '?'
}
