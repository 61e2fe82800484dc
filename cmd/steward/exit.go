package main

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/stewardhq/steward/internal/action"
	"github.com/stewardhq/steward/internal/auth"
	"github.com/stewardhq/steward/internal/config"
	"github.com/stewardhq/steward/internal/store"
)

// Exit codes, documented in docs/cli.md.
const (
	exitOK      = 0 // success
	exitFailed  = 1 // a check or verification ran and failed
	exitUsage   = 2 // bad usage, bad config, bad input
	exitRuntime = 3 // the operation could not run (store down, I/O, …)
)

// errFailed marks an outcome that is a finding, not a malfunction (exit 1).
var errFailed = errors.New("failed")

// usageError marks bad command-line input (exit 2).
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// silentError carries an exit code for a failure already reported on stdout.
type silentError struct{ code int }

func (e silentError) Error() string { return fmt.Sprintf("exit %d", e.code) }

// exitCode is the one place errors become exit codes.
func exitCode(err error) int {
	var silent silentError
	var cfgErrs config.Errors
	var usage usageError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &silent):
		return silent.code
	case errors.Is(err, errFailed):
		return exitFailed
	case errors.As(err, &cfgErrs), errors.As(err, &usage),
		errors.Is(err, store.ErrBadStoreURL), errors.Is(err, store.ErrExists), errors.Is(err, store.ErrNotFound),
		errors.Is(err, auth.ErrBadName), errors.Is(err, auth.ErrUnknownRole), errors.Is(err, auth.ErrUserDisabled),
		errors.Is(err, auth.ErrNoToken), errors.Is(err, auth.ErrInvalidToken), errors.Is(err, auth.ErrExpiredToken),
		errors.Is(err, auth.ErrRevokedToken), errors.Is(err, auth.ErrForbidden), errors.Is(err, errConfigMissing),
		isActionRefusal(err):
		return exitUsage
	default:
		return exitRuntime
	}
}

// isActionRefusal reports the action pipeline refusing a request: the
// input or the action's state must change, not the machine.
func isActionRefusal(err error) bool {
	for _, e := range []error{action.ErrUnknownKind, action.ErrReasonRequired, action.ErrUnknownService, action.ErrNotApproved,
		action.ErrSelfApproval, action.ErrNotEligible, action.ErrAlreadyDecided, action.ErrPlanChanged, action.ErrFrozen,
		action.ErrExpired, action.ErrBadTransition, action.ErrNoBreakGlass, action.ErrSelfReview, action.ErrReviewCompleted,
		action.ErrBadParams, store.ErrConflict} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// reportError prints err for a person at a terminal: config errors one per
// line with their positions, everything else as "steward: …".
func reportError(w io.Writer, err error) {
	var silent silentError
	if errors.As(err, &silent) {
		return
	}
	var cfgErrs config.Errors
	if errors.As(err, &cfgErrs) {
		for _, e := range cfgErrs {
			fmt.Fprintln(w, e.Error())
		}
		fmt.Fprintf(w, "steward: %d configuration error(s); fix them and run `steward validate`\n", len(cfgErrs))
		return
	}
	msg := err.Error()
	if !strings.HasSuffix(msg, "\n") {
		msg += "\n"
	}
	fmt.Fprint(w, "steward: "+msg)
}
