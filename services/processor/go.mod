module github.com/ticketflow/ticketflow/services/processor

go 1.26.8
