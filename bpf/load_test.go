package bpf

import (
	"os"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/rlimit"

	"github.com/tamperscope/tamperscope/internal/testenv"
)

// needRoot skips a test that needs to load BPF programs, or fails it when
// TAMPERSCOPE_REQUIRE_ALL=1.
func needRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		if err := rlimit.RemoveMemlock(); err != nil {
			t.Fatalf("remove memlock limit: %v", err)
		}
		return
	}
	testenv.Need(t, "loading BPF programs needs root")
}

// TestVerifier loads every program of the object through the verifier,
// with default and with non-default settings, so a change the verifier
// rejects fails here rather than on a vantage host.
func TestVerifier(t *testing.T) {
	needRoot(t)
	spec, err := loadCapture()
	if err != nil {
		t.Fatal(err)
	}
	if len(spec.Programs) == 0 {
		t.Fatal("object has no programs")
	}
	for name := range spec.Programs {
		t.Run(name, func(t *testing.T) {
			for _, cfg := range []Config{{}, {SnapBytes: 512, SnapPackets: 1, RingBytes: 1 << 16, Filter: Filter{Ports: []uint16{443}}}} {
				c, err := Load(cfg)
				if err != nil {
					t.Fatalf("load with %+v: %v", cfg, err)
				}
				c.Close()
			}
		})
	}
}

// TestLayout checks the constants Go shares with capture.c against the
// object's BTF.
func TestLayout(t *testing.T) {
	spec, err := loadCapture()
	if err != nil {
		t.Fatal(err)
	}
	var snap *btf.Struct
	if err := spec.Types.TypeByName("pkt_snap", &snap); err != nil {
		t.Fatal(err)
	}
	data := snap.Members[1]
	arr, ok := data.Type.(*btf.Array)
	if !ok || arr.Nelems != SnapMax {
		t.Errorf("pkt_snap.data = %v, want [%d]u8", data.Type, SnapMax)
	}
	if got := int(data.Offset.Bytes()); got != RecordSize {
		t.Errorf("snapshot starts at byte %d, RecordSize is %d", got, RecordSize)
	}
	if spec.Programs[captureProgCapture].Type != ebpf.SchedCLS {
		t.Errorf("program type %v, want SchedCLS", spec.Programs[captureProgCapture].Type)
	}
}
