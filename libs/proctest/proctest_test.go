package proctest

import (
	"net"
	"testing"
)

func TestFreeAddrCanBeBound(t *testing.T) {
	ln, err := net.Listen("tcp", FreeAddr(t))
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
}
