package proctest

import (
	"net"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestFreeAddrCanBeBound(t *testing.T) {
	ln, err := net.Listen("tcp", FreeAddr(t))
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
}

// A process started twice keeps the output of both runs; Stop ends it on the signal.
func TestProcessRestartsAndStops(t *testing.T) {
	p := &Process{Name: "sh", Path: "/bin/sh", Args: []string{"-c", `echo started; trap 'echo stopping; exit 0' TERM; while :; do sleep 0.05; done`}}
	for range 2 {
		p.Start(t, "")
		for !strings.Contains(p.Output(), "started") {
			time.Sleep(10 * time.Millisecond)
		}
		time.Sleep(100 * time.Millisecond) // the trap is set
		if !p.Stop(syscall.SIGTERM, 10*time.Second) {
			t.Fatal("not stopped by SIGTERM")
		}
	}
	if n := strings.Count(p.Output(), "stopping"); n != 2 {
		t.Fatalf("output of both runs expected:\n%s", p.Output())
	}
	if !p.Stop(syscall.SIGTERM, time.Second) {
		t.Fatal("Stop of a stopped process")
	}
}
