package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/coder/websocket"
	"github.com/jackc/pgx/v5"
	"github.com/ticketflow/ticketflow/libs/auth"
	"github.com/ticketflow/ticketflow/libs/config"
	"github.com/ticketflow/ticketflow/libs/cursor"
	"github.com/ticketflow/ticketflow/libs/events"
	"github.com/ticketflow/ticketflow/libs/kafka"
	"github.com/twmb/franz-go/pkg/kgo"
)

// system is one server under test, as the scenarios see it.
type system interface {
	Name() string
	PID() int
	// Tickets prepares n tickets (channels) and returns their ids.
	Tickets(ctx context.Context, prefix string, n int) ([]string, error)
	// Dial opens a client on ticket and returns once what follows is live.
	Dial(ctx context.Context, ticket string) (*client, error)
	// Publish sends one message per ticket given (in order), each stamped with its publish
	// time, and returns once the server acknowledged them.
	Publish(ctx context.Context, tickets []string) error
	// Mark publishes one message to ticket and returns the position to resume after it.
	Mark(ctx context.Context, ticket string) (string, error)
	// Replay connects to ticket from position and returns the messages replayed.
	Replay(ctx context.Context, ticket, position string) (int, error)
	Stop()
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// proc is a child server process with its output in a log file.
type proc struct {
	cmd *exec.Cmd
	log string
}

func startProc(dir, name string, env []string, bin string, args ...string) (*proc, error) {
	logPath := filepath.Join(dir, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, err
	}
	go func() { _ = cmd.Wait(); f.Close() }()
	return &proc{cmd: cmd, log: logPath}, nil
}

func (p *proc) stop(grace time.Duration) {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	deadline := time.Now().Add(grace)
	for time.Now().Before(deadline) {
		if p.cmd.ProcessState != nil || syscall.Kill(p.cmd.Process.Pid, 0) != nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	_ = p.cmd.Process.Kill()
}

// waitHTTP polls url until it answers 200 or the timeout passes.
func waitHTTP(u string, timeout time.Duration, p *proc) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		resp, err := http.Get(u)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		if p.cmd.ProcessState != nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	tail, _ := os.ReadFile(p.log)
	if len(tail) > 2000 {
		tail = tail[len(tail)-2000:]
	}
	return fmt.Errorf("%s not ready within %s; log %s:\n%s", u, timeout, p.log, tail)
}

// rssOf reads a process's resident set size in KiB.
func rssOf(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			return strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
		}
	}
	return 0, errors.New("no VmRSS")
}

// cpuTicks is the CPU time (user + system, in clock ticks) process pid has used so far.
func cpuTicks(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The fields after the command name (which may hold spaces) start after its ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("malformed /proc stat")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, errors.New("short /proc stat")
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	return utime + stime, errors.Join(err1, err2)
}

// waitIdle returns once pid has used (almost) no CPU for three 100 ms windows in a row, or
// after limit: what was published has then been handled everywhere it goes (Centrifugo's
// history; ticketflow's broker, projector and notifier), so a replay measured next is the
// replay alone on both systems.
func waitIdle(pid int, limit time.Duration) time.Duration {
	start := time.Now()
	last, err := cpuTicks(pid)
	for quiet := 0; err == nil && quiet < 3 && time.Since(start) < limit; {
		time.Sleep(100 * time.Millisecond)
		var now int64
		if now, err = cpuTicks(pid); err == nil {
			if now-last <= 1 { // ≤ 10 ms of CPU in 100 ms
				quiet++
			} else {
				quiet = 0
			}
			last = now
		}
	}
	return time.Since(start)
}

// ---- Centrifugo ----

const (
	centrifugoVersion = "v6.9.1"
	cfHistory         = 1024  // live namespace: like the notifier's ring of 1,024 events per ticket
	cfReplayHistory   = 20000 // replay namespace: raised so 10,000 missed events can be recovered
)

type centrifugo struct {
	p      *proc
	addr   string
	apiKey string
	token  string
	http   *http.Client
	d      *dialers
	cmd    string
}

// centrifugoConfig is the generated config: memory engine, HTTP API key, client JWT (HS256),
// namespaces with history + recovery.
func centrifugoConfig(port int, apiKey, secret string) map[string]any {
	ns := func(name string, size int) map[string]any {
		return map[string]any{"name": name, "allow_subscribe_for_client": true, "history_size": size,
			"history_ttl": "600s", "force_recovery": true}
	}
	return map[string]any{
		"http_server": map[string]any{"address": "127.0.0.1", "port": port},
		"log":         map[string]any{"level": "error"},
		"engine":      map[string]any{"type": "memory"},
		"http_api":    map[string]any{"key": apiKey},
		"usage_stats": map[string]any{"disabled": true},
		"health":      map[string]any{"enabled": true},
		"client": map[string]any{
			"token":                          map[string]any{"hmac_secret_key": secret},
			"allowed_origins":                []string{"*"},
			"recovery_max_publication_limit": cfReplayHistory, // default 300: raised for (d)
		},
		"channel": map[string]any{"namespaces": []any{ns("tickets", cfHistory), ns("replay", cfReplayHistory)}},
	}
}

func hs256(secret string, claims map[string]any) string {
	enc := base64.RawURLEncoding
	h := enc.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))
	b, _ := json.Marshal(claims)
	msg := h + "." + enc.EncodeToString(b)
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(msg))
	return msg + "." + enc.EncodeToString(m.Sum(nil))
}

func startCentrifugo(bin, dir string, d *dialers) (*centrifugo, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	secret, key := randomHex(24), randomHex(16)
	cfgPath := filepath.Join(dir, "centrifugo.json")
	b, _ := json.MarshalIndent(centrifugoConfig(port, key, secret), "", "  ")
	if err := os.WriteFile(cfgPath, b, 0o600); err != nil {
		return nil, err
	}
	p, err := startProc(dir, "centrifugo", os.Environ(), bin, "--config", cfgPath)
	if err != nil {
		return nil, err
	}
	c := &centrifugo{p: p, addr: fmt.Sprintf("127.0.0.1:%d", port), apiKey: key, d: d,
		token: hs256(secret, map[string]any{"sub": "bench", "exp": time.Now().Add(24 * time.Hour).Unix()}),
		http:  &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 512, MaxConnsPerHost: 512}},
		cmd:   bin + " --config " + cfgPath}
	if err := waitHTTP("http://"+c.addr+"/health", 30*time.Second, p); err != nil {
		p.stop(time.Second)
		return nil, err
	}
	return c, nil
}

func (c *centrifugo) Name() string { return "Centrifugo " + centrifugoVersion }
func (c *centrifugo) PID() int     { return c.p.cmd.Process.Pid }
func (c *centrifugo) Stop()        { c.p.stop(5 * time.Second) }

func channelOf(ticket string) string {
	if strings.HasPrefix(ticket, "replay-") {
		return "replay:" + ticket
	}
	return "tickets:" + ticket
}

func (c *centrifugo) Tickets(_ context.Context, prefix string, n int) ([]string, error) {
	ids := make([]string, n)
	run := randomHex(4)
	for i := range ids {
		ids[i] = fmt.Sprintf("%s-%s-%d", prefix, run, i)
	}
	return ids, nil
}

// connect opens a socket and sends connect + subscribe in one frame, returning the
// subscribe reply.
func (c *centrifugo) connect(ctx context.Context, ticket string, sub map[string]any) (*client, []byte, error) {
	ws, err := c.d.dial(ctx, "ws://"+c.addr+"/connection/websocket")
	if err != nil {
		return nil, nil, err
	}
	sub["channel"] = channelOf(ticket)
	a, _ := json.Marshal(map[string]any{"id": 1, "connect": map[string]any{"token": c.token, "name": "bench"}})
	b, _ := json.Marshal(map[string]any{"id": 2, "subscribe": sub})
	if err := ws.Write(ctx, websocket.MessageText, append(append(a, '\n'), b...)); err != nil {
		_ = ws.CloseNow()
		return nil, nil, err
	}
	cl := &client{c: ws, buf: make([]byte, 0, 512), centrifugo: true}
	for {
		m, err := cl.read(ctx)
		if err != nil {
			_ = ws.CloseNow()
			return nil, nil, err
		}
		for _, line := range bytes.Split(m, []byte("\n")) {
			var r struct {
				ID    int             `json:"id"`
				Error json.RawMessage `json:"error"`
			}
			if json.Unmarshal(line, &r) != nil {
				continue
			}
			if r.Error != nil {
				_ = ws.CloseNow()
				return nil, nil, fmt.Errorf("centrifugo: %s", line)
			}
			if r.ID == 2 {
				return cl, bytes.Clone(line), nil
			}
		}
	}
}

func (c *centrifugo) Dial(ctx context.Context, ticket string) (*client, error) {
	cl, _, err := c.connect(ctx, ticket, map[string]any{})
	return cl, err
}

func (c *centrifugo) api(ctx context.Context, method string, body any) ([]byte, error) {
	b, _ := json.Marshal(body)
	req, _ := http.NewRequestWithContext(ctx, "POST", "http://"+c.addr+"/api/"+method, bytes.NewReader(b))
	req.Header.Set("X-API-Key", c.apiKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err == nil && (resp.StatusCode != 200 || bytes.Contains(out, []byte(`"error"`))) {
		err = fmt.Errorf("centrifugo %s: %d %.300s", method, resp.StatusCode, out)
	}
	return out, err
}

func (c *centrifugo) Publish(ctx context.Context, tickets []string) error {
	if len(tickets) == 1 {
		_, err := c.api(ctx, "publish", map[string]any{"channel": channelOf(tickets[0]), "data": map[string]string{"message": payloadText(0)}})
		return err
	}
	cmds := make([]any, len(tickets))
	for i, t := range tickets {
		cmds[i] = map[string]any{"publish": map[string]any{"channel": channelOf(t), "data": map[string]string{"message": payloadText(i)}}}
	}
	_, err := c.api(ctx, "batch", map[string]any{"commands": cmds})
	return err
}

func (c *centrifugo) Mark(ctx context.Context, ticket string) (string, error) {
	out, err := c.api(ctx, "publish", map[string]any{"channel": channelOf(ticket), "data": map[string]string{"message": "mark"}})
	if err != nil {
		return "", err
	}
	var r struct {
		Result struct {
			Offset uint64 `json:"offset"`
			Epoch  string `json:"epoch"`
		} `json:"result"`
	}
	if err := json.Unmarshal(out, &r); err != nil {
		return "", err
	}
	return fmt.Sprintf("%d:%s", r.Result.Offset, r.Result.Epoch), nil
}

func (c *centrifugo) Replay(ctx context.Context, ticket, pos string) (int, error) {
	off, epoch, _ := strings.Cut(pos, ":")
	o, _ := strconv.ParseUint(off, 10, 64)
	cl, reply, err := c.connect(ctx, ticket, map[string]any{"recover": true, "offset": o, "epoch": epoch})
	if err != nil {
		return 0, err
	}
	defer cl.c.CloseNow()
	if !bytes.Contains(reply, []byte(`"recovered":true`)) {
		return 0, fmt.Errorf("centrifugo did not recover: %.300s", reply)
	}
	return scanMarkers(reply, func(int64) {}), nil
}

// ---- ticketflow ----

type ticketflow struct {
	p        *proc
	addr     string
	token    string
	cl       *kgo.Client
	producer *kafka.Producer
	d        *dialers
	dbURL    string
	cmd      string
	env      []string
}

// ticketflowEnv is what `ticketflow dev` runs with: defaults, except what a benchmark on
// one machine needs (ports, data dir, database, JWT secret, no demo ticket, WebSocket caps
// lifted: every client is one user on loopback).
func ticketflowEnv(dir, httpAddr, kafkaAddr, secret, dbURL string) []string {
	return []string{
		"TICKETFLOW_DATA_DIR=" + filepath.Join(dir, "ticketflow-data"),
		"TICKETFLOW_HTTP_ADDR=" + httpAddr,
		"TICKETFLOW_EMBEDDED_KAFKA_ADDR=" + kafkaAddr,
		"TICKETFLOW_JWT_SECRET=" + secret,
		"DATABASE_URL=" + dbURL,
		"TICKETFLOW_DEMO=false",
		"TICKETFLOW_WS_MAX_CONNS_PER_USER=0",
		"TICKETFLOW_WS_MAX_CONNS_PER_IP=0",
		"TICKETFLOW_WS_CONNECT_RATE=0",
	}
}

// benchDB is the database URL with a database of its own for this run.
func benchDB(base, name string) (string, error) {
	u, err := url.Parse(base)
	if err != nil {
		return "", err
	}
	u.Path = "/" + name
	return u.String(), nil
}

func dropDB(dbURL string) {
	u, err := url.Parse(dbURL)
	if err != nil {
		return
	}
	name := strings.TrimPrefix(u.Path, "/")
	u.Path = "/postgres"
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, u.String())
	if err != nil {
		return
	}
	defer conn.Close(ctx)
	_, _ = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
}

func startTicketflow(bin, dir, dbURL string, d *dialers, extraEnv ...string) (*ticketflow, error) {
	hp, err := freePort()
	if err != nil {
		return nil, err
	}
	kp, err := freePort()
	if err != nil {
		return nil, err
	}
	httpAddr, kafkaAddr, secret := fmt.Sprintf("127.0.0.1:%d", hp), fmt.Sprintf("127.0.0.1:%d", kp), randomHex(24)
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TICKETFLOW_") && !strings.HasPrefix(kv, "KAFKA_") && !strings.HasPrefix(kv, "DATABASE_") {
			env = append(env, kv)
		}
	}
	own := append(ticketflowEnv(dir, httpAddr, kafkaAddr, secret, dbURL), extraEnv...)
	p, err := startProc(dir, "ticketflow", append(env, own...), bin, "dev")
	if err != nil {
		return nil, err
	}
	t := &ticketflow{p: p, addr: httpAddr, d: d, dbURL: dbURL, env: own, cmd: bin + " dev"}
	if err := waitHTTP("http://"+httpAddr+"/readyz", 90*time.Second, p); err != nil {
		p.stop(time.Second)
		return nil, err
	}
	v, err := auth.NewVerifier(secret)
	if err != nil {
		t.Stop()
		return nil, err
	}
	if t.token, err = v.Issue("bench", auth.RoleUser, 24*time.Hour); err != nil {
		t.Stop()
		return nil, err
	}
	// The processor's way: an idempotent acks=all franz-go client and Producer.Append.
	kcfg := config.Kafka{Brokers: []string{kafkaAddr}, Topic: "ticket-events"}
	if t.cl, err = kafka.NewClient(kcfg, kgo.MaxBufferedRecords(1<<20)); err != nil {
		t.Stop()
		return nil, err
	}
	t.producer = kafka.NewProducer(t.cl, kcfg.Topic)
	return t, nil
}

func (t *ticketflow) Name() string { return "ticketflow" }
func (t *ticketflow) PID() int     { return t.p.cmd.Process.Pid }
func (t *ticketflow) Stop() {
	if t.cl != nil {
		t.cl.Close()
	}
	t.p.stop(15 * time.Second)
	dropDB(t.dbURL)
}

func (t *ticketflow) Tickets(ctx context.Context, prefix string, n int) ([]string, error) {
	ids := make([]string, n)
	envs := make([]events.Envelope, n)
	run := randomHex(4)
	for i := range ids {
		ids[i] = fmt.Sprintf("%s-%s-%d", prefix, run, i)
		envs[i] = events.MustNew(ids[i], "", "bench", &events.TicketCreatedData{Title: ids[i], Owner: "bench",
			RepositoryURL: "https://example.invalid/bench.git", BaseBranch: "main"})
	}
	_, err := t.producer.Append(ctx, envs...)
	return ids, err
}

func (t *ticketflow) dial(ctx context.Context, ticket, cur string) (*client, int, error) {
	q := url.Values{"access_token": {t.token}}
	if cur != "" {
		q.Set("cursor", cur)
	}
	ws, err := t.d.dial(ctx, "ws://"+t.addr+"/ws/tickets/"+ticket+"?"+q.Encode())
	if err != nil {
		return nil, 0, err
	}
	cl := &client{c: ws, buf: make([]byte, 0, 512)}
	n := 0
	for {
		m, err := cl.read(ctx)
		if err != nil {
			_ = ws.CloseNow()
			return nil, 0, err
		}
		if bytes.Contains(m, []byte(`"type":"error"`)) {
			_ = ws.CloseNow()
			return nil, 0, fmt.Errorf("ticketflow: %s", m)
		}
		n += scanMarkers(m, func(int64) {})
		if bytes.Contains(m, []byte(`"type":"replay_complete"`)) {
			return cl, n, nil
		}
	}
}

func (t *ticketflow) Dial(ctx context.Context, ticket string) (*client, error) {
	cl, _, err := t.dial(ctx, ticket, "")
	return cl, err
}

func logEvent(ticket string, text string) events.Envelope {
	return events.MustNew(ticket, "bench-run", "processor", &events.LogEmittedData{Level: "INFO", Message: text, Step: "run_ci"})
}

func (t *ticketflow) Publish(ctx context.Context, tickets []string) error {
	envs := make([]events.Envelope, len(tickets))
	for i, tk := range tickets {
		envs[i] = logEvent(tk, payloadText(i))
	}
	_, err := t.producer.Append(ctx, envs...)
	return err
}

func (t *ticketflow) Mark(ctx context.Context, ticket string) (string, error) {
	pos, err := t.producer.Append(ctx, logEvent(ticket, "mark"))
	if err != nil {
		return "", err
	}
	return cursor.Single(pos[0].Partition, pos[0].Offset).String(), nil
}

func (t *ticketflow) Replay(ctx context.Context, ticket, pos string) (int, error) {
	cl, n, err := t.dial(ctx, ticket, pos)
	if err != nil {
		return 0, err
	}
	_ = cl.c.CloseNow()
	return n, nil
}
