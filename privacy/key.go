package privacy

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/tamperscope/tamperscope/privacy/cryptopan"
)

// Key is a pseudonymization key: 16 bytes of AES-128 key and 16 bytes of
// pad (cryptopan.New).
type Key = [cryptopan.KeySize]byte

// ErrKeyPermissions is returned for a key file that users other than its
// owner can read or write.
var ErrKeyPermissions = errors.New("key file is accessible to group or others")

// ParseKey decodes a key file's content: 64 hex digits (surrounding white
// space ignored) or exactly 32 raw bytes.
func ParseKey(b []byte) (Key, error) {
	var k Key
	if t := bytes.TrimSpace(b); len(t) == 2*len(k) {
		if _, err := hex.Decode(k[:], t); err == nil {
			return k, nil
		}
	}
	if len(b) == len(k) {
		copy(k[:], b)
		return k, nil
	}
	return k, fmt.Errorf("parse key: want 64 hex digits or %d raw bytes, got %d bytes", len(k), len(b))
}

// LoadOrCreateKey reads the key in path, or creates path with a new random
// key, hex-encoded, mode 0600, when it does not exist. It refuses a key
// file that group or others may read or write (ErrKeyPermissions): whoever
// holds the key can test guesses of client addresses against pseudonyms.
func LoadOrCreateKey(path string) (Key, error) {
	var k Key
	f, err := os.OpenFile(path, os.O_RDONLY, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return createKey(path)
	}
	if err != nil {
		return k, fmt.Errorf("open key file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return k, fmt.Errorf("stat key file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return k, fmt.Errorf("read key file %s: not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return k, fmt.Errorf("read key file %s: mode %04o: %w (chmod 600 it)", path, perm, ErrKeyPermissions)
	}
	// Room for hex and white space, and to tell a longer file.
	b, err := io.ReadAll(io.LimitReader(f, 4*int64(len(k))))
	if err != nil {
		return k, fmt.Errorf("read key file %s: %w", path, err)
	}
	if k, err = ParseKey(b); err != nil {
		return k, fmt.Errorf("read key file %s: %w", path, err)
	}
	return k, nil
}

func createKey(path string) (Key, error) {
	var k Key
	if _, err := rand.Read(k[:]); err != nil {
		return k, fmt.Errorf("create key: %w", err)
	}
	// Written under a temporary name and linked into place: a reader never
	// sees a half-written key, and of two processes racing to create it
	// the loser reads the winner's key instead of replacing it.
	f, err := os.CreateTemp(filepath.Dir(path), ".key-*.tmp")
	if err != nil {
		return k, fmt.Errorf("create key file: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	// CreateTemp makes the file with mode 0600.
	_, err = f.WriteString(hex.EncodeToString(k[:]) + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return k, fmt.Errorf("write key file %s: %w", path, err)
	}
	if err := os.Link(tmp, path); errors.Is(err, fs.ErrExist) {
		return LoadOrCreateKey(path)
	} else if err != nil {
		return k, fmt.Errorf("create key file: %w", err)
	}
	return k, nil
}
