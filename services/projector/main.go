// Command projector folds the event log into PostgreSQL tables.
package main

import (
	"github.com/ticketflow/ticketflow/libs/platform"
	"github.com/ticketflow/ticketflow/services/projector/projector"
)

func main() { platform.Main("projector", projector.Build) }
