package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	_ "net/http/pprof" // served on -pprof when asked
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/ticketflow/ticketflow/libs/loadgen"

	"github.com/gofiber/fiber/v2"
	"github.com/ticketflow/ticketflow/libs/auth"
	"github.com/ticketflow/ticketflow/libs/config"
	"github.com/ticketflow/ticketflow/libs/kafka"
	"github.com/ticketflow/ticketflow/services/notifier/app"
	"github.com/ticketflow/ticketflow/services/notifier/notifier"
)

// serverInfo is what the server child prints on its first stdout line.
type serverInfo struct {
	WS     string   `json:"ws"`
	Kafka  []string `json:"kafka"`
	Topic  string   `json:"topic"`
	Secret string   `json:"secret"`
}

const benchSecret = "bench-secret-bench-secret-0123456789"

// runServer is the child process: the embedded broker and one notifier, as `ticketflow dev`
// would run them, plus /debug/mem for steady memory readings. It exits when stdin closes.
func runServer(pprofAddr string, historyPerTicket int) error {
	loadgen.RaiseFDLimit()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	broker, err := kafka.StartEmbedded("127.0.0.1:0", "", 12, kafka.Persistence{})
	if err != nil {
		return err
	}
	defer broker.Close()
	kcfg := config.Kafka{Brokers: broker.Addrs(), Topic: "ticket-events", Partitions: 12, ReplicationFactor: 1}
	cl, err := kafka.NewClient(kcfg)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := kafka.EnsureTopic(ctx, cl, kcfg); err != nil {
		return err
	}
	cl.Close()
	verifier, _ := auth.NewVerifier(benchSecret)
	cfg := config.Defaults[app.Config]()
	cfg.ConnectRate = 0 // the storm comes from a handful of loopback addresses
	// ...and one user: no per-address or per-user connection cap either (5,000 resumes
	// over 16 addresses exceed the default 256 per address).
	cfg.MaxConnsPerIP, cfg.MaxConnsPerUser = 0, 0
	if historyPerTicket >= 0 {
		cfg.HistoryPerTicket = historyPerTicket
	}
	n, err := notifier.New(cfg, notifier.Deps{Log: log, Verifier: verifier, Kafka: kcfg, AllowedOrigins: []string{"*"}})
	if err != nil {
		return err
	}
	srv := fiber.New(fiber.Config{DisableStartupMessage: true})
	srv.Get("/debug/mem", func(c *fiber.Ctx) error {
		runtime.GC()
		debug.FreeOSMemory()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return c.JSON(fiber.Map{"rss": rss(), "heap_inuse": ms.HeapInuse, "stack_inuse": ms.StackInuse,
			"goroutines": runtime.NumGoroutine()})
	})
	n.Mount(srv)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	go func() { _ = srv.Listener(ln) }()
	go func() { _ = n.Run(ctx) }()
	if pprofAddr != "" {
		go func() { _ = http.ListenAndServe(pprofAddr, nil) }()
	}
	for !n.Ready() {
		time.Sleep(20 * time.Millisecond)
	}
	info, _ := json.Marshal(serverInfo{WS: ln.Addr().String(), Kafka: broker.Addrs(), Topic: kcfg.Topic, Secret: benchSecret})
	fmt.Println(string(info))
	_, _ = io.Copy(io.Discard, os.Stdin) // the parent holds stdin open while it needs us
	return nil
}

// rss reads the process's resident set size in bytes.
func rss() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return -1
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb * 1024
		}
	}
	return -1
}
