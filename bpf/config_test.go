package bpf

import (
	"reflect"
	"testing"
)

// Drops must name every drop counter once: a field added to Counters without a line in
// Drops would be missing from the exit log.
func TestDropsCoverCounters(t *testing.T) {
	var c Counters
	v := reflect.ValueOf(&c).Elem()
	for i := range v.NumField() {
		v.Field(i).SetUint(uint64(1) << i)
	}
	var seen uint64
	names := map[string]bool{}
	for _, d := range c.Drops() {
		if d.Count&(d.Count-1) != 0 || seen&d.Count != 0 || names[d.Reason] || d.Reason == "" {
			t.Errorf("drop %q = %#x: not one field, or a field or name seen twice", d.Reason, d.Count)
		}
		seen |= d.Count
		names[d.Reason] = true
	}
	for i := range v.NumField() {
		name := v.Type().Field(i).Name
		counted := seen&(1<<i) != 0
		if want := name != "Passed" && name != "Redirected"; counted != want {
			t.Errorf("field %s: in Drops %v, want %v", name, counted, want)
		}
	}
}
