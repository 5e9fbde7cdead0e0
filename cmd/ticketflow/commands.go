package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/ticketflow/ticketflow/cmd/ticketflow/client"
	"golang.org/x/term"
)

// outputFlag adds --output (text|json) to a read command.
func outputFlag(cmd *cobra.Command) *string {
	out := cmd.Flags().StringP("output", "o", "text", "output format: text or json")
	_ = cmd.RegisterFlagCompletionFunc("output", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return []string{"text", "json"}, cobra.ShellCompDirectiveNoFileComp
	})
	return out
}

// ticketCommand is a command on one ticket (its only argument) with the --output flag.
func ticketCommand(use, short string) (*cobra.Command, *string) {
	cmd := &cobra.Command{Use: use, Short: short, Args: cobra.ExactArgs(1)}
	return cmd, outputFlag(cmd)
}

func checkOutput(o string) error {
	if o != "text" && o != "json" {
		return fmt.Errorf("--output %q: want text or json", o)
	}
	return nil
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// withClient is the RunE of an API command: it checks --output, builds the client from the
// stored login (or the environment) and runs fn with a context cancelled by SIGINT/SIGTERM.
func withClient(out *string, fn func(ctx context.Context, c *client.Client, cmd *cobra.Command, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		if err := checkOutput(*out); err != nil {
			return err
		}
		c, err := apiClient()
		if err != nil {
			return err
		}
		ctx, cancel := cmdContext()
		defer cancel()
		return fn(ctx, c, cmd, args)
	}
}

// cmdContext is cancelled by SIGINT/SIGTERM.
func cmdContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

func loginCmd() *cobra.Command {
	var url, token string
	cmd := &cobra.Command{
		Use:   "login",
		Short: "Store the server URL and a bearer token in the user config dir (mode 0600)",
		Long: `Store the server URL and a bearer token in os.UserConfigDir()/ticketflow/config.json
(mode 0600). The token is read from --token, or asked for (read from stdin when it is not a
terminal). It is checked against GET /api/me first. TICKETFLOW_URL and TICKETFLOW_TOKEN override
the stored values for every command.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cur, err := loadConfig()
			if err != nil {
				return err
			}
			if url == "" {
				url = cur.URL
			}
			url = strings.TrimRight(url, "/")
			if token == "" {
				if token, err = readToken(cmd, url); err != nil {
					return err
				}
			}
			if token == "" {
				return errors.New("no token given")
			}
			ctx, cancel := cmdContext()
			defer cancel()
			me, err := client.New(url, token).Me(ctx)
			if err != nil {
				return fmt.Errorf("checking the token against %s: %w", url, err)
			}
			p, err := saveConfig(cliConfig{URL: url, Token: token})
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Logged in to %s as %s (%s); saved to %s\n", url, me.Sub, me.Role, p)
			return nil
		},
	}
	cmd.Flags().StringVar(&url, "url", "", "server URL (default: TICKETFLOW_URL, the stored URL, or "+defaultURL+")")
	cmd.Flags().StringVar(&token, "token", "", "bearer token (default: asked for; `ticketflow token` prints one for dev)")
	return cmd
}

func readToken(cmd *cobra.Command, url string) (string, error) {
	in := cmd.InOrStdin()
	if f, ok := in.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprintf(cmd.ErrOrStderr(), "Token for %s: ", url)
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(cmd.ErrOrStderr())
		return strings.TrimSpace(string(b)), err
	}
	line, err := bufio.NewReader(in).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	return strings.TrimSpace(line), nil
}

func ticketsCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "tickets", Short: "List, create and show tickets"}
	cmd.AddCommand(ticketsListCmd(), ticketsCreateCmd(), ticketsShowCmd())
	return cmd
}

func ticketsListCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "list", Aliases: []string{"ls"}, Short: "List tickets (your own; admins: all)", Args: cobra.NoArgs}
	out := outputFlag(cmd)
	cmd.RunE = withClient(out, func(ctx context.Context, c *client.Client, cmd *cobra.Command, _ []string) error {
		ts, err := c.ListTickets(ctx)
		if err != nil {
			return err
		}
		if *out == "json" {
			if ts == nil {
				ts = []client.Ticket{}
			}
			return printJSON(cmd.OutOrStdout(), ts)
		}
		return writeTicketTable(cmd.OutOrStdout(), ts)
	})
	return cmd
}

// writeTicketTable prints tickets as aligned columns.
func writeTicketTable(w io.Writer, ts []client.Ticket) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATUS\tSTEP\tPROGRESS\tTITLE")
	for _, t := range ts {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d%%\t%s\n", t.ID, t.Status, dash(t.Step), t.Progress, t.Title)
	}
	return tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func ticketsCreateCmd() *cobra.Command {
	var nt client.NewTicket
	cmd := &cobra.Command{Use: "create", Short: "Create a ticket", Args: cobra.NoArgs}
	out := outputFlag(cmd)
	cmd.Flags().StringVarP(&nt.Title, "title", "t", "", "title (required)")
	cmd.Flags().StringVarP(&nt.Description, "description", "d", "", "description")
	cmd.Flags().StringVar(&nt.RepositoryURL, "repo", "", "repository URL")
	cmd.Flags().StringVar(&nt.BaseBranch, "base-branch", "", "base branch")
	cmd.Flags().StringVar(&nt.CICommand, "ci", "", "CI command")
	cmd.Flags().StringVar(&nt.SimulateFailure, "simulate-failure", "", "simulated executor only: make CI fail (always|once)")
	_ = cmd.Flags().MarkHidden("simulate-failure")
	_ = cmd.MarkFlagRequired("title")
	cmd.RunE = withClient(out, func(ctx context.Context, c *client.Client, cmd *cobra.Command, _ []string) error {
		t, err := c.CreateTicket(ctx, nt)
		if err != nil {
			return err
		}
		if *out == "json" {
			return printJSON(cmd.OutOrStdout(), t)
		}
		fmt.Fprintln(cmd.OutOrStdout(), t.ID)
		return nil
	})
	return cmd
}

func ticketsShowCmd() *cobra.Command {
	cmd, out := ticketCommand("show <ticket>", "Show a ticket and its runs")
	cmd.RunE = withClient(out, func(ctx context.Context, c *client.Client, cmd *cobra.Command, args []string) error {
		t, err := c.Ticket(ctx, args[0])
		if err != nil {
			return err
		}
		runs, err := c.Runs(ctx, t.ID)
		if err != nil {
			return err
		}
		if *out == "json" {
			if runs == nil {
				runs = []client.Run{}
			}
			return printJSON(cmd.OutOrStdout(), struct {
				client.Ticket
				Runs []client.Run `json:"runs"`
			}{t, runs})
		}
		return writeTicket(cmd.OutOrStdout(), t, runs)
	})
	return cmd
}

// writeTicket prints one ticket and its runs.
func writeTicket(w io.Writer, t client.Ticket, runs []client.Run) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	row := func(k, v string) {
		if v != "" {
			fmt.Fprintf(tw, "%s:\t%s\n", k, v)
		}
	}
	row("id", t.ID)
	row("title", t.Title)
	row("owner", t.Owner)
	row("status", t.Status)
	row("step", t.Step)
	row("progress", fmt.Sprintf("%d%%", t.Progress))
	row("message", t.Message)
	row("error", t.Error)
	row("repository", t.RepositoryURL)
	row("base branch", t.BaseBranch)
	row("ci command", t.CICommand)
	row("current run", t.CurrentRunID)
	if t.PullRequestURL != "" {
		row("pull request", t.PullRequestURL)
	}
	if t.LLMInputTokens+t.LLMOutputTokens > 0 {
		row("llm", fmt.Sprintf("%d in / %d out tokens, $%.4f (all runs)", t.LLMInputTokens, t.LLMOutputTokens, t.LLMCostUSD))
	}
	row("created", t.CreatedAt.Format(time.RFC3339))
	row("description", t.Description)
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(runs) == 0 {
		return nil
	}
	fmt.Fprintln(w, "\nruns:")
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  RUN\tSTATUS\tSTEP\tITERATION\tTOOLS\tTOKENS IN/OUT\tCOST\tREQUESTED")
	for _, r := range runs {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%d\t%d\t%d/%d\t$%.4f\t%s\n", r.ID, r.Status, dash(r.Step), r.Iteration, r.ToolCalls,
			r.LLMInputTokens, r.LLMOutputTokens, r.LLMCostUSD, r.RequestedAt.Format(time.RFC3339))
	}
	return tw.Flush()
}

func runCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "run", Short: "Start and watch runs"}
	cmd.AddCommand(runStartCmd(), runWatchCmd())
	return cmd
}

func runStartCmd() *cobra.Command {
	var watch bool
	cmd, out := ticketCommand("start <ticket>", "Start processing a ticket (--watch: then watch it, exit code as `run watch`)")
	cmd.Flags().BoolVarP(&watch, "watch", "w", false, "watch the run until it ends")
	cmd.RunE = withClient(out, func(ctx context.Context, c *client.Client, cmd *cobra.Command, args []string) error {
		res, err := c.Start(ctx, args[0])
		if err != nil {
			return err
		}
		if !watch {
			if *out == "json" {
				return printJSON(cmd.OutOrStdout(), res)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "run %s %s\n", res.RunID, res.Status)
			return nil
		}
		if *out != "json" && !isTerminal(cmd.OutOrStdout()) {
			fmt.Fprintf(cmd.OutOrStdout(), "run   %s %s\n", res.RunID, res.Status)
		}
		return watchRun(ctx, cmd, c, args[0], *out == "json")
	})
	return cmd
}

func runWatchCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "watch <ticket>",
		Short: "Watch a ticket's current run live; exit 0 COMPLETED/VALIDATED, 1 FAILED, 2 CANCELLED",
		Long: `Watch a ticket's current run live: the 8 steps, a progress bar, log lines and the CI result.
A dropped connection is resumed from the last cursor (nothing missed, nothing twice).
On a terminal it redraws a small block; otherwise it prints one plain line per message
(--output json: one JSON message per line).

Exit status: 0 when the run reaches COMPLETED (CI passed, awaiting human validation — the
brief's "finished" state at 100 %) or VALIDATED, 1 FAILED (or an error), 2 CANCELLED.`,
		Args: cobra.ExactArgs(1),
	}
	out := outputFlag(cmd)
	cmd.RunE = withClient(out, func(ctx context.Context, c *client.Client, cmd *cobra.Command, args []string) error {
		return watchRun(ctx, cmd, c, args[0], *out == "json")
	})
	return cmd
}

func simpleWrite(use, short string, do func(ctx context.Context, c *client.Client, ticket string) (map[string]any, error), extra func(*cobra.Command)) *cobra.Command {
	cmd, out := ticketCommand(use, short)
	if extra != nil {
		extra(cmd)
	}
	cmd.RunE = withClient(out, func(ctx context.Context, c *client.Client, cmd *cobra.Command, args []string) error {
		res, err := do(ctx, c, args[0])
		if err != nil {
			return err
		}
		if *out == "json" {
			return printJSON(cmd.OutOrStdout(), res)
		}
		fmt.Fprintln(cmd.OutOrStdout(), summarize(res))
		return nil
	})
	return cmd
}

// summarize turns a write's answer into one line: "ok status=CANCELLED run_id=...".
func summarize(res map[string]any) string {
	var parts []string
	for _, k := range []string{"status", "ticket_id", "run_id", "next_run_id"} {
		if v, ok := res[k]; ok && v != nil && v != "" {
			parts = append(parts, fmt.Sprintf("%s=%v", k, v))
		}
	}
	return strings.TrimSpace("ok " + strings.Join(parts, " "))
}

func cancelCmd() *cobra.Command {
	return simpleWrite("cancel <ticket>", "Cancel a ticket's active run", func(ctx context.Context, c *client.Client, t string) (map[string]any, error) {
		return c.Cancel(ctx, t)
	}, nil)
}

func approveCmd() *cobra.Command {
	return simpleWrite("approve <ticket>", "Approve a completed run (VALIDATED)", func(ctx context.Context, c *client.Client, t string) (map[string]any, error) {
		return c.Validate(ctx, t, "approve", "")
	}, nil)
}

func requestChangesCmd() *cobra.Command {
	var msg string
	cmd := simpleWrite("request-changes <ticket> -m MSG", "Ask for changes on a completed run: a new run with the comment",
		func(ctx context.Context, c *client.Client, t string) (map[string]any, error) {
			return c.Validate(ctx, t, "request_changes", msg)
		}, func(cmd *cobra.Command) {
			cmd.Flags().StringVarP(&msg, "message", "m", "", "the comment (required)")
			_ = cmd.MarkFlagRequired("message")
		})
	return cmd
}

func logsCmd() *cobra.Command {
	var runID string
	var follow bool
	cmd, out := ticketCommand("logs <ticket>", "Print a run's log lines (default: the current run; --follow: live until it ends)")
	cmd.Flags().StringVar(&runID, "run", "", "run id (default: the ticket's current run)")
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new lines until the run ends (current run only)")
	cmd.RunE = withClient(out, func(ctx context.Context, c *client.Client, cmd *cobra.Command, args []string) error {
		w := cmd.OutOrStdout()
		if follow {
			if runID != "" {
				t, err := c.Ticket(ctx, args[0])
				if err != nil {
					return err
				}
				if t.CurrentRunID != runID {
					return fmt.Errorf("--follow follows the current run (%s), not %s", dash(t.CurrentRunID), runID)
				}
			}
			return c.Watch(ctx, args[0], client.WatchOptions{}, func(m client.Message) error {
				if m.Type == "log" || m.Type == "agent_tool" {
					if *out == "json" {
						if err := json.NewEncoder(w).Encode(m); err != nil {
							return err
						}
					} else {
						fmt.Fprintln(w, logLine(m))
					}
				}
				if m.Terminal() {
					return client.ErrStop
				}
				return nil
			})
		}
		if runID == "" {
			t, err := c.Ticket(ctx, args[0])
			if err != nil {
				return err
			}
			if t.CurrentRunID == "" {
				return fmt.Errorf("ticket %s has no run yet", t.ID)
			}
			runID = t.CurrentRunID
		}
		items, err := c.Events(ctx, args[0], runID)
		if err != nil {
			return err
		}
		lines := logMessages(items)
		if *out == "json" {
			return printJSON(w, lines)
		}
		for _, m := range lines {
			fmt.Fprintln(w, logLine(m))
		}
		return nil
	})
	return cmd
}

// logMessages picks the LogEmitted and AgentToolCalled events of an audit trail as the
// messages the WebSocket makes of them (log, agent_tool).
func logMessages(items []client.EventItem) []client.Message {
	out := []client.Message{}
	for _, it := range items {
		var env client.Envelope
		if json.Unmarshal(it.Event, &env) != nil {
			continue
		}
		typ := map[string]string{"LogEmitted": "log", "AgentToolCalled": "agent_tool"}[string(env.Type)]
		if typ == "" {
			continue
		}
		m := client.Message{Type: typ, TicketID: env.TicketID, RunID: env.RunID, EventID: env.ID, Cursor: it.Cursor,
			Timestamp: env.OccurredAt.UTC().Format(time.RFC3339Nano)}
		_ = json.Unmarshal(env.Data, &m)
		m.Type = typ
		out = append(out, m)
	}
	return out
}

func eventsCmd() *cobra.Command {
	var ndjson bool
	var runID string
	cmd, out := ticketCommand("events <ticket>", "Print a ticket's audit trail (--ndjson: the NDJSON export, one envelope per line)")
	cmd.Flags().BoolVar(&ndjson, "ndjson", false, "stream the NDJSON export (GET /api/tickets/{id}/events?format=ndjson)")
	cmd.Flags().StringVar(&runID, "run", "", "only this run's events")
	cmd.RunE = withClient(out, func(ctx context.Context, c *client.Client, cmd *cobra.Command, args []string) error {
		w := cmd.OutOrStdout()
		if ndjson {
			if runID != "" {
				return errors.New("--ndjson exports the whole ticket; leave out --run")
			}
			return c.ExportNDJSON(ctx, args[0], w)
		}
		items, err := c.Events(ctx, args[0], runID)
		if err != nil {
			return err
		}
		if *out == "json" {
			if items == nil {
				items = []client.EventItem{}
			}
			return printJSON(w, items)
		}
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "CURSOR\tTIME\tTYPE\tRUN")
		for _, it := range items {
			var env client.Envelope
			_ = json.Unmarshal(it.Event, &env)
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", it.Cursor, env.OccurredAt.UTC().Format(time.RFC3339Nano), env.Type, dash(env.RunID))
		}
		return tw.Flush()
	})
	return cmd
}
