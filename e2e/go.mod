module github.com/ticketflow/ticketflow/e2e

go 1.26.8

require github.com/ticketflow/ticketflow/libs v0.0.0

require github.com/golang-jwt/jwt/v5 v5.3.1 // indirect

replace github.com/ticketflow/ticketflow/libs => ../libs

replace github.com/ticketflow/ticketflow/services/projector => ../services/projector
