package fdb

import "errors"

var (
	// ErrInvalidOptions marks Options that New refuses; the message names the field.
	ErrInvalidOptions = errors.New("invalid fdb options")
	// ErrInvalidTarget marks a Target that LocalPort or RemoteVTEP did not make (None included).
	ErrInvalidTarget = errors.New("invalid fdb target")
	// ErrFull means every entry of the table is static, so there is nothing to evict.
	ErrFull = errors.New("fdb full of static entries")
)
