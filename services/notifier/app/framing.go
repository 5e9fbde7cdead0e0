package app

import "encoding/binary"

// WebSocket opcodes and close codes used here (RFC 6455 §5.2, §7.4; 4xxx are ours).
const (
	opText  = 0x1
	opClose = 0x8
	opPing  = 0x9
	opPong  = 0xA

	CloseNormal       = 1000
	CloseGoingAway    = 1001
	CloseUnsupported  = 1003
	ClosePolicy       = 1008
	CloseTooBig       = 1009
	CloseTryAgain     = 1013
	CloseBadRequest   = 4400
	CloseUnauthorized = 4401
	CloseForbidden    = 4403
	CloseNotFound     = 4404
)

// appendHeader appends the header of a final (unfragmented) server frame with an n-byte
// payload: server frames are never masked.
func appendHeader(dst []byte, op byte, n int) []byte {
	switch {
	case n < 126:
		return append(dst, 0x80|op, byte(n))
	case n <= 0xFFFF:
		return append(dst, 0x80|op, 126, byte(n>>8), byte(n))
	default:
		dst = append(dst, 0x80|op, 127)
		return binary.BigEndian.AppendUint64(dst, uint64(n))
	}
}

// maxHeader is the longest frame header appendHeader writes.
const maxHeader = 10

func appendFrame(dst []byte, op byte, payload []byte) []byte {
	return append(appendHeader(dst, op, len(payload)), payload...)
}

// closePayload is a close frame's payload: the code, then the reason cut to 120 bytes (a
// control frame carries at most 125).
func closePayload(code int, text string) []byte {
	if len(text) > 120 {
		text = text[:120]
	}
	return append(binary.BigEndian.AppendUint16(nil, uint16(code)), text...)
}
