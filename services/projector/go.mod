module github.com/ticketflow/ticketflow/services/projector

go 1.26.8
