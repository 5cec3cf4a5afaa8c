package store

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
)

// prepareSQLiteFile creates the database file at path, empty and 0600,
// when it does not exist yet, so that the driver opens a file only its
// owner can read (left to itself it creates one 0644 less the umask).
// SQLite gives its -wal and -shm files the database file's mode. An
// existing file that others may read is named in a warning: it is the
// operator's to fix, not the server's to change behind their back.
func prepareSQLiteFile(path string, log *slog.Logger) error {
	if path == "" || path == ":memory:" {
		return nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	switch {
	case err == nil:
		return f.Close()
	case errors.Is(err, fs.ErrExist):
		WarnIfReadableByOthers(log, path, "database")
		return nil
	}
	return fmt.Errorf("create sqlite database %s: %w", path, err)
}

// WarnIfReadableByOthers logs a warning when the file at path (a database
// or a secret; what says which) may be read by users other than its owner.
// A file that cannot be examined is not reported.
func WarnIfReadableByOthers(log *slog.Logger, path, what string) {
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm()&0o044 == 0 {
		return
	}
	log.Warn(what+" file is readable by others; chmod 600 it", "path", path, "mode", fi.Mode().Perm().String())
}
