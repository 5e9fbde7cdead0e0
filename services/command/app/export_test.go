package app

import "github.com/ticketflow/ticketflow/libs/events"

// SetFaults installs a fault hook (see faultHook): tests stop a keyed write at a fault point
// as a crash of the process would.
func SetFaults(a *Application, hook func(point, transactionalID string, envs []events.Envelope, dropSession func()) (crash bool)) {
	a.faults = hook
}

// Fault points, for tests.
const (
	FaultAfterClaim  = faultAfterClaim
	FaultAfterCommit = faultAfterCommit
)
