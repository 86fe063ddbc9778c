package atomicfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// Append adds data to path in one write(2) on an O_APPEND file (so
// concurrent writers never interleave lines), creating it with mode when
// missing. The summary file and the run log live in /var/log/odoo, which
// belongs to odoo: the file is opened without following a symlink, and a
// root caller refuses one that is not a regular file of its own with a
// single link (odoo could have planted a link to /root/.bashrc).
func Append(path string, data []byte, mode os.FileMode) error {
	f, err := OpenOwn(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, mode)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// OpenOwn opens path with flag (and mode when it creates it), never
// through a symlink, and checks what it opened: a regular file owned by
// this process's user, with one link. Files root writes where other users
// may write the directory are opened this way.
func OpenOwn(path string, flag int, mode os.FileMode) (*os.File, error) {
	f, err := os.OpenFile(path, flag|syscall.O_NOFOLLOW, mode)
	if err != nil {
		if pe, ok := err.(*os.PathError); ok && pe.Err == syscall.ELOOP {
			return nil, fmt.Errorf("%s is a symbolic link, which is never followed: remove it (it is recreated)", path)
		}
		return nil, err
	}
	if err := checkOwn(f); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

func checkOwn(f *os.File) error {
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	switch {
	case !fi.Mode().IsRegular():
		return fmt.Errorf("%s is not a regular file: remove it (it is recreated)", f.Name())
	case ok && int(st.Uid) != os.Geteuid():
		return fmt.Errorf("%s belongs to uid %d, not to uid %d that writes it: another user may have planted it; check it, then remove it or chown it", f.Name(), st.Uid, os.Geteuid())
	case ok && st.Nlink != 1:
		return fmt.Errorf("%s has %d hard links: another user may have planted it; check it, then remove it", f.Name(), st.Nlink)
	}
	return nil
}

// CreateNew writes data to a new file name in dir (created root-only, mode
// 0700, when missing), never through a symlink and never over an existing
// file: the failover's and the rejoin's reports name the data lost. When
// name is taken (two runs within the second of a name's timestamp), it
// writes name-2, name-3... before the extension instead, and returns the
// path it wrote.
func CreateNew(dir, name string, data []byte) (string, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	ext := filepath.Ext(name)
	base := name[:len(name)-len(ext)]
	path := filepath.Join(dir, name)
	f, err := OpenOwn(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	for n := 2; errors.Is(err, fs.ErrExist) && n < 100; n++ {
		path = filepath.Join(dir, fmt.Sprintf("%s-%d%s", base, n, ext))
		f, err = OpenOwn(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	}
	if err != nil {
		return "", err
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return path, err
}
