package ports

import (
	"strings"
	"testing"

	"github.com/gofiber/contrib/websocket"
)

// FuzzClientMessage: any client frame is classified without panicking; only the ping forms
// produce a pong, and binary frames are refused.
func FuzzClientMessage(f *testing.F) {
	for _, s := range []string{"ping", "PING", " ping\n", `{"type":"ping"}`, `{ "type" : "ping" }`, `{"type":"pong"}`,
		"", "pingping", strings.Repeat("{", 100), "\xff\xfe", `{"type":"ping","x":1}`} {
		f.Add(websocket.TextMessage, []byte(s))
	}
	f.Add(websocket.BinaryMessage, []byte("ping"))
	f.Fuzz(func(t *testing.T, typ int, data []byte) {
		got := parseClientMessage(typ, data)
		switch {
		case typ == websocket.BinaryMessage:
			if got != clientBinary {
				t.Fatalf("binary frame classified %v", got)
			}
		case got == clientPing:
			trimmed := strings.ToLower(strings.TrimSpace(string(data)))
			if typ != websocket.TextMessage || (trimmed != "ping" && !strings.Contains(trimmed, "ping")) {
				t.Fatalf("%q (type %d) taken for a ping", data, typ)
			}
		}
	})
}
