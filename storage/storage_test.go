package storage_test

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/longhaul-dev/longhaul/storage"
)

func TestWriteKeepsTheFirstFileAndLeavesNoTemporaries(t *testing.T) {
	root := t.TempDir()
	d, err := storage.NewDir(root)
	if err != nil {
		t.Fatal(err)
	}
	const job = "dl_01JH3W7ZK8Q4X9V2N6M5R0T8YB"
	if _, err := d.Open(job, 7); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("open before write = %v, want ErrNotFound", err)
	}
	size, err := d.Write(job, 7, "a1", strings.NewReader("first"))
	if err != nil || size != 5 {
		t.Fatalf("write = %d, %v", size, err)
	}
	size, err = d.Write(job, 7, "a2", strings.NewReader("second attempt"))
	if err != nil || size != 5 {
		t.Fatalf("second write = %d, %v; want the first file's size 5", size, err)
	}
	f, err := d.Open(job, 7)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if got, _ := io.ReadAll(f); string(got) != "first" {
		t.Errorf("stored %q, want the first write", got)
	}
	entries, _ := os.ReadDir(filepath.Join(root, job))
	if len(entries) != 1 {
		t.Errorf("job directory holds %d entries, want only the file", len(entries))
	}
	if err := d.RemoveJob(job); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Size(job, 7); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("size after RemoveJob = %v, want ErrNotFound", err)
	}
}
