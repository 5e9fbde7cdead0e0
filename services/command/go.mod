module github.com/ticketflow/ticketflow/services/command

go 1.26.8
