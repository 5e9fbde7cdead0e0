package kubesandbox

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	remotecommandconsts "k8s.io/apimachinery/pkg/util/remotecommand"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/streaming/pkg/httpstream"
	"k8s.io/streaming/pkg/httpstream/spdy"
)

// attachServer is the API server's side of `pods/attach` over SPDY (v4), on 127.0.0.1: it
// refuses WebSocket upgrades (as an older API server does, so the fallback is exercised),
// reads the attached stdin to its end, and answers with status.
type attachServer struct {
	mu       sync.Mutex
	path     string
	query    string
	received bytes.Buffer
	status   metav1.Status
	stderr   string
}

func (a *attachServer) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if strings.EqualFold(req.Header.Get("Upgrade"), "websocket") {
		http.Error(w, "websocket not supported here", http.StatusBadRequest)
		return
	}
	a.mu.Lock()
	a.path, a.query = req.URL.Path, req.URL.RawQuery
	a.mu.Unlock()
	if _, err := httpstream.Handshake(req, w, []string{remotecommandconsts.StreamProtocolV4Name}); err != nil {
		return
	}
	streams := make(chan httpstream.Stream, 4)
	conn := spdy.NewResponseUpgrader().UpgradeResponse(w, req, func(s httpstream.Stream, _ <-chan struct{}) error {
		streams <- s
		return nil
	})
	if conn == nil {
		return
	}
	defer conn.Close()
	byType := map[string]httpstream.Stream{}
	for len(byType) < 4 { // error, stdin, stdout, stderr
		select {
		case s := <-streams:
			byType[s.Headers().Get(corev1.StreamType)] = s
		case <-time.After(5 * time.Second):
			return
		}
	}
	data, _ := io.ReadAll(byType[corev1.StreamTypeStdin])
	a.mu.Lock()
	a.received.Write(data)
	status, stderr := a.status, a.stderr
	a.mu.Unlock()
	if stderr != "" {
		_, _ = byType[corev1.StreamTypeStderr].Write([]byte(stderr))
	}
	body, _ := json.Marshal(status)
	_, _ = byType[corev1.StreamTypeError].Write(body)
}

func newAttachUploader(t *testing.T, srv *httptest.Server) *AttachUploader {
	t.Helper()
	cfg := &rest.Config{Host: srv.URL}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &AttachUploader{Config: cfg, Client: client}
}

func TestAttachUploaderStreamsStdinToTheContainer(t *testing.T) {
	a := &attachServer{status: metav1.Status{Status: metav1.StatusSuccess}}
	srv := httptest.NewServer(a)
	defer srv.Close()
	up := newAttachUploader(t, srv)
	payload := bytes.Repeat([]byte("tar bytes "), 100_000) // ~1 MB: more than one frame
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := up.Upload(ctx, "ticketflow-ci", "ticketflow-ci-abc-x7k2p", uploadContainer, bytes.NewReader(payload)); err != nil {
		t.Fatal(err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.path != "/api/v1/namespaces/ticketflow-ci/pods/ticketflow-ci-abc-x7k2p/attach" {
		t.Errorf("path %q", a.path)
	}
	for _, want := range []string{"container=workspace", "stdin=true"} {
		if !strings.Contains(a.query, want) {
			t.Errorf("query %q lacks %s", a.query, want)
		}
	}
	if !bytes.Equal(a.received.Bytes(), payload) {
		t.Errorf("container received %d bytes, want the %d sent", a.received.Len(), len(payload))
	}
}

func TestAttachUploaderReportsTheContainersFailure(t *testing.T) {
	a := &attachServer{
		status: metav1.Status{Status: metav1.StatusFailure, Message: "command terminated with non-zero exit code", Reason: "NonZeroExitCode",
			Details: &metav1.StatusDetails{Causes: []metav1.StatusCause{{Type: "ExitCode", Message: "2"}}}},
		stderr: "tar: This does not look like a tar archive",
	}
	srv := httptest.NewServer(a)
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err := newAttachUploader(t, srv).Upload(ctx, "ticketflow-ci", "p", uploadContainer, strings.NewReader("not a tar"))
	if err == nil || !strings.Contains(err.Error(), "does not look like a tar archive") {
		t.Fatalf("err %v, want the container's complaint", err)
	}
}

func TestAttachUploaderHonoursContext(t *testing.T) {
	srv := httptest.NewServer(&attachServer{status: metav1.Status{Status: metav1.StatusSuccess}})
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe() // never closed: the upload would wait forever
	defer pw.Close()
	done := make(chan error, 1)
	go func() { done <- newAttachUploader(t, srv).Upload(ctx, "ticketflow-ci", "p", uploadContainer, pr) }()
	time.Sleep(100 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("a cancelled upload reported success")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Upload ignored its context")
	}
}
