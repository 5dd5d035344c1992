package recent

import (
	"testing"
	"time"
)

const h = int64(time.Hour)

func TestForgetsAfterTwoHorizons(t *testing.T) {
	m := New[string, int](time.Hour, 100)
	m.Put(0, "a", 1)
	m.Put(h/2, "b", 2)
	m.Put(h, "c", 3) // turn: a and b are now the previous generation
	for _, k := range []string{"a", "b", "c"} {
		if _, ok := m.Get(k); !ok {
			t.Errorf("%s forgotten within two horizons", k)
		}
	}
	m.Put(h+h/2, "a", 4) // seen again: carried into the current generation
	m.Put(2*h, "d", 5)   // turn: b (last put at h/2) is dropped
	if _, ok := m.Get("b"); ok {
		t.Error("b kept after two horizons without a Put")
	}
	if v, ok := m.Get("a"); !ok || v != 4 {
		t.Errorf("a = %d, %v; want 4 (put again)", v, ok)
	}
	m.Put(10*h, "e", 6) // a long silence forgets everything before it
	for _, k := range []string{"a", "c", "d"} {
		if _, ok := m.Get(k); ok {
			t.Errorf("%s kept across a silence of eight horizons", k)
		}
	}
	if v, ok := m.Get("e"); !ok || v != 6 || m.Len() != 1 {
		t.Errorf("e = %d, %v, len %d; want 6, true, 1", v, ok, m.Len())
	}
}

func TestGetDoesNotRefresh(t *testing.T) {
	m := New[string, int](time.Hour, 100)
	m.Put(0, "a", 1)
	m.Put(h, "x", 0)
	m.Get("a")
	m.Put(2*h, "x", 0)
	if _, ok := m.Get("a"); ok {
		t.Error("a kept by being read")
	}
}

// TestBounded: however many keys arrive within one horizon, the Map holds
// at most twice its max, and the latest max are all there.
func TestBounded(t *testing.T) {
	const max = 1000
	m := New[int, int](time.Hour, max)
	for i := range 100 * max {
		m.Put(int64(i), i, i)
		if m.Len() > 2*max {
			t.Fatalf("%d keys held after %d puts, max %d", m.Len(), i+1, max)
		}
	}
	for i := 99 * max; i < 100*max; i++ {
		if v, ok := m.Get(i); !ok || v != i {
			t.Fatalf("recent key %d: %d, %v", i, v, ok)
		}
	}
}

// TestKeep: Keep returns the value a key has, in either generation, or a
// new one, and counts the key as seen as Put does.
func TestKeep(t *testing.T) {
	m := New[string, *int](time.Hour, 100)
	made := 0
	mk := func() *int { made++; return new(int) }
	a := m.Keep(0, "a", mk)
	*a = 1
	if got := m.Keep(h/2, "a", mk); got != a || made != 1 {
		t.Fatalf("Keep of a key of the current generation made a new value (%d made)", made)
	}
	m.Put(h, "b", new(int)) // turn: a is in the previous generation
	if got := m.Keep(h+h/2, "a", mk); got != a || made != 1 {
		t.Fatalf("Keep of a key of the previous generation made a new value (%d made)", made)
	}
	m.Put(2*h, "c", new(int)) // turn: a was seen at 1.5h, so it stays
	if got, ok := m.Get("a"); !ok || got != a {
		t.Fatal("a forgotten although Keep saw it within two horizons")
	}
	if _, ok := m.Get("b"); !ok {
		t.Fatal("b forgotten within two horizons")
	}
	m.Put(3*h, "d", new(int)) // turn: b, last seen at h, is dropped
	if _, ok := m.Get("b"); ok {
		t.Fatal("b kept after two horizons without a Put or Keep")
	}
}
