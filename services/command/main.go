// Command command serves ticketflow's HTTP API: writes append events, reads use projections.
package main

import (
	"github.com/ticketflow/ticketflow/libs/platform"
	"github.com/ticketflow/ticketflow/services/command/command"
)

func main() {
	platform.Main("command", command.Build)
}
