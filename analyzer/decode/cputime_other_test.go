//go:build !linux

package decode

import "testing"

func reportCPU(_ *testing.B, loop func()) { loop() }
