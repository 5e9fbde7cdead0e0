module github.com/ticketflow/ticketflow/cmd/ticketflow

go 1.26.8
