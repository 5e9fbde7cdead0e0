package notifier

import "github.com/ticketflow/ticketflow/services/notifier/app"

// Config is the notifier's configuration: the application's tuning (TICKETFLOW_WS_*) and
// whether it uses the database.
type Config struct {
	app.Config
	// UseDB lets the notifier ask the tickets projection for owners of tickets whose
	// TicketCreated left the log (retention), and share the record of used WebSocket tickets
	// with the other replicas. Off, or with the database unreachable at start: such tickets
	// answer 4404, and WebSocket tickets are single-use per replica only.
	UseDB bool `env:"TICKETFLOW_NOTIFIER_USE_DB" envDefault:"true"`
}
