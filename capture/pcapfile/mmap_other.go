//go:build !unix

package pcapfile

import "os"

const window = 1 << 62

// mapInput never maps on this platform: the reader reads the file.
func mapInput(*os.File) (input, func() error, bool) { return input{}, nil, false }

func (in *input) advance(int64) {}
