package launcher

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// Install copies the executable src to dest, executable by every user (the
// component may run as any), creating dest's directory. The init container
// runs it to put the launcher into the step's launcher volume. The copy is
// renamed into place, so dest is never a partial file.
func Install(src, dest string) (err error) {
	defer func() {
		if err != nil {
			err = fmt.Errorf("installing the launcher at %s: %w", dest, err)
		}
	}()
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	dir := filepath.Dir(dest)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(dest)+".*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = os.Remove(tmp.Name())
		}
	}()
	if _, err := io.Copy(tmp, in); err != nil {
		_ = tmp.Close()
		return err
	}
	// CreateTemp's mode is 0600 whatever the umask: set the mode itself.
	if err := tmp.Chmod(0o755); err != nil {
		_ = tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), dest)
}
