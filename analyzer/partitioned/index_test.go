package partitioned

import "testing"

func TestParseSetFile(t *testing.T) {
	const prefix = "part-pkts-p3-"
	for _, tc := range []struct {
		name string
		set  string
		last int64
		ok   bool
	}{
		{"part-pkts-p3-100-250-0.parquet", "pkts-p3-100-250", 250, true},
		{"part-pkts-p3-100-250+2-1.parquet", "pkts-p3-100-250+2", 250, true},
		{"part-pkts-p3-0-0-7.parquet", "pkts-p3-0-0", 0, true},
		{"part-pkts-p33-100-250-0.parquet", "", 0, false}, // another partition
		{"part-pkts-p3-100-250-0.parquet.tmp", "", 0, false},
		{"part-pkts-p3-100-0.parquet", "", 0, false},
		{"part-pkts-p3-x-250-0.parquet", "", 0, false},
		{"part-pkts-p3-100-y-0.parquet", "", 0, false},
		{"part-pkts-p3-100-250-z.parquet", "", 0, false},
		{"part-replay-0-0.parquet", "", 0, false},
		{"part-pkts-p3-100--5-0.parquet", "", 0, false},
		{"part-pkts-p3--1-5-0.parquet", "", 0, false},
	} {
		set, last, ok := parseSetFile(tc.name, prefix)
		if set != tc.set || last != tc.last || ok != tc.ok {
			t.Errorf("%s: %q %d %v, want %q %d %v", tc.name, set, last, ok, tc.set, tc.last, tc.ok)
		}
	}
}

func FuzzParseSetFile(f *testing.F) {
	f.Add("part-pkts-p3-100-250+2-1.parquet")
	f.Fuzz(func(t *testing.T, name string) {
		if set, last, ok := parseSetFile(name, "part-pkts-p3-"); ok && (set == "" || last < 0) {
			t.Fatalf("%q: set %q last %d", name, set, last)
		}
	})
}
