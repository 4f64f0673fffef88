package maps

import (
	"errors"
)

// ErrClosed is returned by control-plane operations on a closed map.
var ErrClosed = errors.New("map is closed")

// Linux errno values, which programs see as negative return values of helpers
// whatever the host OS.
const (
	EPERM      = 1
	ENOENT     = 2
	E2BIG      = 7
	EAGAIN     = 11
	ENOMEM     = 12
	EBUSY      = 16
	EEXIST     = 17
	EINVAL     = 22
	ENOSPC     = 28
	EOPNOTSUPP = 95
)

// errnoError refines a sentinel with the errno Linux returns for it in a
// particular place (an array's delete is EINVAL, a full LPM trie ENOSPC).
type errnoError struct {
	err   error
	errno int
}

func (e *errnoError) Error() string { return e.err.Error() }
func (e *errnoError) Unwrap() error { return e.err }

var (
	errArrayDelete = &errnoError{errors.New("elements of an array cannot be deleted"), EINVAL}
	errTrieFull    = &errnoError{ErrFull, ENOSPC}
	errReadOnly    = &errnoError{errors.New("map is read-only for programs"), EPERM}
	errFDArrayFlag = &errnoError{errors.New("program array updates take only UpdateAny"), EINVAL}
)

// Errno returns the positive Linux errno a helper reports for err (as
// -errno in r0), 0 for nil. Errors this package does not know map to EINVAL.
func Errno(err error) int {
	if err == nil {
		return 0
	}
	var ee *errnoError
	if errors.As(err, &ee) {
		return ee.errno
	}
	switch {
	case errors.Is(err, ErrKeyNotExist):
		return ENOENT
	case errors.Is(err, ErrKeyExist):
		return EEXIST
	case errors.Is(err, ErrFull):
		return E2BIG
	case errors.Is(err, ErrNotSupported):
		return EOPNOTSUPP
	}
	return EINVAL
}

// negErrno is r0 for a failed helper.
func negErrno(err error) uint64 { return uint64(-int64(Errno(err))) }

// neg is r0 for a helper failing with errno e.
func neg(e int) uint64 { return uint64(-int64(e)) }
