//go:build !linux

package pcapfile

import "os"

// mapInput never maps on this platform: the reader reads the file.
func mapInput(*os.File) (input, func() error, bool) { return input{}, nil, false }

func (in *input) advance(int64) {}
