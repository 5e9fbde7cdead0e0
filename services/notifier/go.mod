module github.com/ticketflow/ticketflow/services/notifier

go 1.26.8
