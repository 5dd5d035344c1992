package sink

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"
)

// CommittedFiles lists, sorted, the committed Parquet files of one dataset
// (flows, findings, packets or digests) under root: every *.parquet below
// root/dataset, skipping hidden names — a writer's .part-*.parquet.tmp
// files are not published yet. A missing dataset directory has no files.
func CommittedFiles(root, dataset string) ([]string, error) {
	dir := filepath.Join(root, dataset)
	var out []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if path == dir && errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if path != dir && strings.HasPrefix(d.Name(), ".") {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.IsDir() && strings.HasSuffix(d.Name(), ".parquet") {
			out = append(out, path)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", dir, err)
	}
	slices.Sort(out)
	return out, nil
}
