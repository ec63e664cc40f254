package main

import (
	"fmt"
	"strconv"
)

// intFlag is a numeric flag with a documented range, checked as it is
// parsed: a value out of range, or not a whole number, is a usage error
// (exit 2) naming the flag, the range and an example, before any command
// runs. Every numeric flag of keyward is one.
type intFlag struct {
	value    *int
	name     string
	min, max int
	unit     string // "rows per transaction"
	example  int
}

func (f *intFlag) String() string {
	if f == nil || f.value == nil {
		return ""
	}
	return strconv.Itoa(*f.value)
}

func (f *intFlag) Set(s string) error {
	n, err := strconv.Atoi(s)
	if err != nil || n < f.min || n > f.max {
		return fmt.Errorf("--%s takes %d to %d %s, such as --%s %d", f.name, f.min, f.max, f.unit, f.name, f.example)
	}
	*f.value = n
	return nil
}

func (f *intFlag) Type() string { return "int" }
