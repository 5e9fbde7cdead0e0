// Command ticketflow is the developer CLI: `ticketflow dev` runs the whole stack in one
// process; `ticketflow token` prints a bearer token; `ticketflow migrate` applies the schema;
// `ticketflow broker` runs the embedded broker alone for a multi-process topology.
package main

import (
	"fmt"
	"os"

	"github.com/ticketflow/ticketflow/libs/logging"
)

const usage = `ticketflow — automated ticket development, streamed live

usage:
  ticketflow dev                       run everything in one process (embedded Kafka unless KAFKA_BROKERS)
  ticketflow token --sub S --role R    print a bearer token signed with TICKETFLOW_JWT_SECRET
  ticketflow migrate                   create the database if needed and apply migrations
  ticketflow broker [flags]            the embedded Kafka-protocol broker alone (kfake), persisted;
                                       -brokers N -port P | -addrs A,B; -data-dir D (see -h)

configuration comes from the environment; see README.md.
`

func main() {
	logging.Setup()
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "dev":
		err = runDev(os.Args[2:])
	case "token":
		err = runToken(os.Args[2:])
	case "migrate":
		err = runMigrate()
	case "broker":
		err = runBroker(os.Args[2:])
	case "help", "-h", "--help":
		fmt.Print(usage)
		return
	default:
		fmt.Fprintf(os.Stderr, "unknown command %q\n\n%s", os.Args[1], usage)
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "ticketflow:", err)
		os.Exit(1)
	}
}
