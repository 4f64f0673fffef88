package conformance

import (
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// writeParentStdout writes s to the standard output of process pid. It
// takes a duplicate of that descriptor with pidfd_getfd, so that the write
// shares the parent's file offset: when the go command's output is a
// regular file, the go command's later writes then follow the line instead
// of overwriting it. Where pidfd_getfd is refused (an older kernel, no
// permission), it opens /proc/PID/fd/1, but only for a pipe or a terminal,
// which have no offset.
func writeParentStdout(pid int, s string) bool {
	if pidfd, err := unix.PidfdOpen(pid, 0); err == nil {
		defer unix.Close(pidfd)
		if fd, err := unix.PidfdGetfd(pidfd, 1, 0); err == nil {
			f := os.NewFile(uintptr(fd), "go command's stdout")
			defer f.Close()
			_, err := f.WriteString(s)
			return err == nil
		}
	}
	path := filepath.Join("/proc", strconv.Itoa(pid), "fd", "1")
	st, err := os.Stat(path)
	if err != nil || st.Mode()&(os.ModeNamedPipe|os.ModeCharDevice) == 0 {
		return false
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return false
	}
	defer f.Close()
	_, err = f.WriteString(s)
	return err == nil
}
