// Command notifier runs the WebSocket notifier on its own: configuration from the
// environment, /healthz, /readyz and /metrics beside /ws/tickets[/:ticket_id].
// `ticketflow dev` builds the same notifier.Build in its single process instead. The notifier
// needs no producer, and the database is optional (TICKETFLOW_NOTIFIER_USE_DB): see
// notifier.Platform.
package main

import (
	"github.com/ticketflow/ticketflow/libs/platform"
	"github.com/ticketflow/ticketflow/services/notifier/notifier"
)

func main() {
	platform.Main("notifier", notifier.Build, notifier.Platform...)
}
