// Command ticketflow is the ticketflow CLI: the API client (`login`, `tickets`, `run start|watch`,
// `logs`, `cancel`, `approve`, `request-changes`, `events`) and the developer commands
// (`dev` runs the whole stack in one process; `token` prints a bearer token; `migrate` applies
// the schema; `broker` runs the embedded broker alone for a multi-process topology).
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"runtime/debug"

	"github.com/spf13/cobra"
	"github.com/ticketflow/ticketflow/libs/logging"
)

// exitError ends the process with code, after printing err if it is set.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

func main() {
	logging.Setup()
	root := newRootCmd()
	err := root.Execute()
	if err == nil {
		return
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil {
			fmt.Fprintln(os.Stderr, "ticketflow:", ee.err)
		}
		os.Exit(ee.code)
	}
	fmt.Fprintln(os.Stderr, "ticketflow:", err)
	os.Exit(1)
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "ticketflow",
		Short: "ticketflow — automated ticket development, streamed live",
		Long: `ticketflow — automated ticket development, streamed live.

Client commands talk to a server (default ` + defaultURL + `, the address of ` + "`ticketflow dev`" + `):
log in once with ` + "`ticketflow login`" + ` (stored in the user config dir) or set TICKETFLOW_URL and
TICKETFLOW_TOKEN. Server commands (dev, broker, migrate, token) read their configuration from the
environment; see README.md.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(
		devCmd(), tokenCmd(), migrateCmd(), brokerCmd(), versionCmd(),
		loginCmd(), ticketsCmd(), runCmd(), logsCmd(), cancelCmd(), approveCmd(), requestChangesCmd(), eventsCmd(),
	)
	return root
}

func devCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "dev",
		Short: "Run everything in one process (embedded Kafka unless KAFKA_BROKERS)",
		Args:  cobra.NoArgs,
		RunE:  func(_ *cobra.Command, args []string) error { return runDev(args) },
	}
}

func migrateCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "migrate",
		Short: "Create the database if needed and apply migrations (DATABASE_URL)",
		Args:  cobra.NoArgs,
		RunE:  func(*cobra.Command, []string) error { return runMigrate() },
	}
}

// legacyFlags runs a command whose flags are parsed by its own flag.FlagSet (Go-style
// single-dash flags such as `-sub alice`, kept as they were): -h/--help print its usage and
// exit 0 without running anything.
func legacyFlags(use, short, long string, run func([]string) error) *cobra.Command {
	return &cobra.Command{
		Use:                use,
		Short:              short,
		Long:               long,
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			for _, a := range args {
				if a == "--" {
					break
				}
				if a == "-h" || a == "-help" || a == "--help" {
					fmt.Fprintf(cmd.OutOrStdout(), "%s\n\nUsage:\n  ticketflow %s\n\n", cmd.Long, cmd.Use)
					// The flag set prints its own flag list.
					err := run([]string{"-h"})
					if errors.Is(err, flag.ErrHelp) {
						return nil
					}
					return err
				}
			}
			err := run(args)
			if errors.Is(err, flag.ErrHelp) {
				return nil
			}
			return err
		},
	}
}

func tokenCmd() *cobra.Command {
	return legacyFlags("token [-sub S] [-role R] [-ttl D]", "Print a bearer token signed with TICKETFLOW_JWT_SECRET",
		"Print a bearer token signed with TICKETFLOW_JWT_SECRET (or dev's generated secret in TICKETFLOW_DATA_DIR).", runToken)
}

func brokerCmd() *cobra.Command {
	return legacyFlags("broker [flags]", "The embedded Kafka-protocol broker alone (kfake), persisted",
		"The embedded Kafka-protocol broker alone (kfake), persisted: -brokers N -port P | -addrs A,B; -data-dir D.", runBroker)
}

// versionString is the module version and VCS revision of this binary.
func versionString() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "ticketflow (unknown version)"
	}
	v := bi.Main.Version
	if v == "" {
		v = "(devel)"
	}
	var rev, when, dirty string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			when = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "-dirty"
			}
		}
	}
	out := "ticketflow " + v
	if rev != "" {
		out += " " + rev + dirty
	}
	if when != "" {
		out += " " + when
	}
	return out + " " + bi.GoVersion
}

func versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version (module version, VCS revision, Go version)",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintln(cmd.OutOrStdout(), versionString())
		},
	}
}
