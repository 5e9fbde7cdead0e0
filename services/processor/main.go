// Command processor runs the ticket workflow for every accepted run.
package main

import (
	"github.com/ticketflow/ticketflow/libs/platform"
	"github.com/ticketflow/ticketflow/services/processor/processor"
)

func main() {
	platform.Main("processor", processor.Build)
}
