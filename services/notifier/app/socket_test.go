package app

import (
	"net"
	"testing"
)

// hijacked stands for fasthttp's hijacked connection: its Close does nothing.
type hijacked struct {
	net.Conn
	inner net.Conn
}

func (h hijacked) Close() error         { return nil }
func (h hijacked) UnsafeConn() net.Conn { return h.inner }

// A session closes the socket under a hijacked connection's wrapper, and finds its descriptor
// there: a write error must unblock the reader, and inline writes need the TCP socket.
func TestSessionReachesTheSocketUnderTheWrapper(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	s := &Session{nc: hijacked{Conn: server, inner: server}}
	if rawConn(s.nc) == nil {
		t.Fatal("no descriptor found under the wrapper")
	}
	s.closeSocket()
	if _, err := server.Write([]byte("x")); err == nil {
		t.Fatal("the socket under the wrapper is still open")
	}
	if p1, _ := net.Pipe(); rawConn(p1) != nil {
		t.Fatal("an in-memory pipe has no descriptor, yet one was found")
	}
}
